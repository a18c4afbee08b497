"""The ``yekuo`` command line: parse, call the command side or a read model, render. No logic of its own."""
