"""(feature package)"""
