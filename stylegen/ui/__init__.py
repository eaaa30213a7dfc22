"""`stylegen ui`: a local web page over the library (docs/ui.md)."""
