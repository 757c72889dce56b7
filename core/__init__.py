"""The bottom of the tree: errors, HTTP error handling and small caches, importing nothing of ours."""
