"""Workflows that span collections, over the models and the services: `accounts.py`, and
`book_list.py` (books with their list positions, numbered pages and totals from the owner's record).
A model writes only its own collection; whatever must change several at once is written here,
once, and the views call it. May import models, auth/, mail/ and covers/; never a view."""
