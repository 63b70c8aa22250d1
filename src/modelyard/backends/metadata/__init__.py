"""Metadata store: experiments, runs and (later) features and models, behind small interfaces."""
