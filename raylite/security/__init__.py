"""Defence in depth: private session directories, secret files, token handling."""
