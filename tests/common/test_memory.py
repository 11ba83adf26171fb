import platform

import pytest

from gradlab.common.memory import keep_resident_memory_flat


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_mmap_threshold_is_set_on_glibc():
    assert keep_resident_memory_flat() is True
