"""Worker web views on Faust's web server."""
