"""The command line `affsr`: app.py holds the app and `main`, the console script's entry point; one
module per command; common.py what they share."""
