// SPDX-License-Identifier: GPL-2.0-only
/*
 * The two unwinder entry points Rust's std refers to when built for musl
 * (its backtrace printer). oom-ext is built with panic=abort and never
 * unwinds, and Debian has no libunwind.a for musl: a panic message is
 * printed, its backtrace has no frames.
 */
typedef int (*unwind_trace_fn)(void *context, void *arg);

int _Unwind_Backtrace(unwind_trace_fn fn, void *arg)
{
	(void)fn;
	(void)arg;
	return 5; /* _URC_END_OF_STACK */
}

unsigned long _Unwind_GetIP(void *context)
{
	(void)context;
	return 0;
}
