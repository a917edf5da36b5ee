"""The config schema, one module per section; `selfplay.config` re-exports every name."""
