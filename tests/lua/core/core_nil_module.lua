-- Used by tests/test_coroutines.py: a module returning nothing after yielding.
ngx.sleep(0.001)
core_nil_module_ran = (core_nil_module_ran or 0) + 1
