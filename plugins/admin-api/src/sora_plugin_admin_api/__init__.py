"""Sora's HTTP admin API: the Go Sora's ``/admin`` routes on FastAPI, served inside the kernel."""
