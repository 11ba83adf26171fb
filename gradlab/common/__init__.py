"""Layer 0, common: what every layer may use, needing nothing else of gradlab.

Writing results without losing any (``files``: fresh run directories, whole-or-nothing files,
figures as PNG and PDF), options declared once on config fields (``options``), the versions a
result records (``versions``), and the allocator setting that keeps long runs flat (``memory``).
"""
