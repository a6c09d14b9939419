"""One module per CLI command: ``configure(parser)`` adds its arguments, ``execute(args)`` runs it."""
