"""The control plane's database: tables, engine and sessions, migrations.

Only the control plane imports this package (it needs SQLAlchemy); the GPU machine's agent never
does, and the bundle shipped to it leaves this folder out.
"""
