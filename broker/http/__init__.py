"""The HTTP glue every feature's blueprint shares: the error handler that renders the contract's
envelope, strict request reading, schema-driven input and output, the guard of the image API."""
