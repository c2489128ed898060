"""A wire corpus: what each provider and endpoint Alephant serves sends back (see corpus.py)."""
