// ESLint (flat config) for every JavaScript file in the repo: the browser module, the admin UI's
// modules and this file. `make lint` runs it; editors with the ESLint extension read it too.
import js from "@eslint/js";
import globals from "globals";

export default [
  {
    // Vendored bundles are other projects' code, kept byte for byte as published.
    ignores: ["broker/static/vendor/", "node_modules/", ".venv/", "test-artifacts/"],
  },
  {
    linterOptions: {
      reportUnusedDisableDirectives: "error",
    },
  },
  js.configs.recommended,
  {
    files: ["**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
    },
    rules: {
      // Rules that catch bugs rather than taste.
      eqeqeq: ["error", "always"],
      "no-unused-vars": ["error", { args: "after-used", caughtErrors: "all", ignoreRestSiblings: true }],
      "no-implicit-globals": "error",
      "no-var": "error",
      "prefer-const": "error",
      // A `let`/`const`/class read before its declaration in the same scope throws (the temporal
      // dead zone). Function declarations are hoisted, and a closure may name a later variable.
      "no-use-before-define": ["error", { functions: false, classes: true, variables: false }],
      "no-shadow": ["error", { builtinGlobals: false, hoist: "functions" }],
      "no-template-curly-in-string": "error",
      "no-self-compare": "error",
      "no-unmodified-loop-condition": "error",
      "no-unreachable-loop": "error",
      "no-constructor-return": "error",
      "array-callback-return": "error",
      "no-implied-eval": "error",
      "no-new-func": "error",
      "no-eval": "error",
      "no-throw-literal": "error",
      "prefer-promise-reject-errors": "error",
      "no-return-assign": "error",
    },
  },
  {
    files: ["broker/static/**/*.js"],
    languageOptions: {
      globals: { ...globals.browser },
    },
    rules: {
      // The UI renders data with DOM APIs and textContent only: HTML strings are how user data
      // (a filename, a caption) becomes script. The admin page's CSP is the second line of defence.
      "no-restricted-properties": [
        "error",
        ...["innerHTML", "outerHTML", "insertAdjacentHTML", "createContextualFragment"].map((property) => ({
          property,
          message: "Build nodes with DOM APIs and set text with textContent.",
        })),
        { object: "document", property: "write", message: "Build nodes with DOM APIs." },
        { object: "document", property: "writeln", message: "Build nodes with DOM APIs." },
      ],
    },
  },
  {
    files: ["eslint.config.js"],
    languageOptions: {
      globals: { ...globals.node },
    },
  },
];
