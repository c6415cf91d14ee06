"""One Router per feature; each module's router() builds a fresh one (a Router joins one Dispatcher only)."""
