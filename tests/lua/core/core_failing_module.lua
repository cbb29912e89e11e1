-- Used by tests/test_coroutines.py: a module whose top level sleeps, then fails.
ngx.sleep(0.001)
error("module top level failed")
