"""The command side: the application service that loads a case, runs one command and stores its events
atomically (with the command's receipt), group commit, the composition root, and the store's log read as
published messages."""
