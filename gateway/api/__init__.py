"""HTTP layer: thin controllers, request/response structs, middleware, problem details."""
