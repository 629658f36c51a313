"""The nouns and kubectl's rules on plain data. Rule: standard library only, no I/O."""
