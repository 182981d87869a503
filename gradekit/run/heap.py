"""glibc malloc settings for processes that allocate and free tensor-sized blocks all the time.

By default glibc gives each block over 128 KiB its own mmap, unmaps it when freed, and trims the
heap whenever its free top passes twice the largest block freed so far. A battery makes and drops
thousands of 1-16 MiB tensors, in the grader (decoding and judging) and in the student's process,
so many of them came from fresh pages: each a trip into the kernel to zero a page that the next
free gave back. With these settings freed blocks stay in the heap and later tensors reuse them
(on T04, the grader's kernel time fell from about 35 to 12 ms a submission). Nothing is held
beyond the process's own peak: the student's process is capped by its memory limit and ends with
its submission.
"""
import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's upper bound on 64-bit: blocks past it still get their own mmap
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory():
    """Serve blocks up to 32 MiB from the heap and keep what is freed (up to 1 GiB free); a no-op
    where libc is not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
