/* libempty_preload.so (launcher_test.sh): a shared object that does nothing,
 * an LD_PRELOAD entry of the caller's own that the launcher must keep
 * beside the preload object. */
int wlf_test_empty_preload;
