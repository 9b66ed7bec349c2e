"""Cover thumbnails once made (save_image.py makes them): where they live (storage.py: a folder
or GridFS), how they are served, and the commands that move and prune them (cli.py).
May import models and database/; never a view."""
