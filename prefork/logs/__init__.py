"""The error log and the access log, shared by the arbiter and the workers."""
