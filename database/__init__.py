"""The database layer, below the models: the one MongoClient of a process (client.py), and what
every model shares (documents.py): the base class that owns a collection and declares its
indexes, the clock, and the parsing of ids from outside. Imports nothing of the project's."""
