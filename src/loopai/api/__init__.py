"""HTTP side of the server: thin Litestar routes over the hub and the Loopai domain."""
