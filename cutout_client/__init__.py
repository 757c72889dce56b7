"""`cutout`: a folder cut out through a Cutout server, a plain HTTP client that imports nothing of the server."""
