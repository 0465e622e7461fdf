//! Fallback mode's emergency buffer: anonymous memory, locked and touched
//! page by page so every page is really backed, released with munmap.

use nix::sys::mman::{mlock, mmap_anonymous, munmap, MapFlags, ProtFlags};
use std::ffi::c_void;
use std::num::NonZeroUsize;
use std::ptr::NonNull;

pub struct Buffer {
    ptr: NonNull<c_void>,
    len: usize,
}

const PAGE: usize = 4096;

impl Buffer {
    /// Reserves `mib` MiB. Fails (without OOM-killing anyone: MAP_POPULATE
    /// and mlock report ENOMEM/EAGAIN) when memory is short.
    pub fn reserve(mib: u32) -> std::io::Result<Option<Buffer>> {
        let Some(len) = NonZeroUsize::new(mib as usize * 1024 * 1024) else {
            return Ok(None);
        };
        // SAFETY: a fresh private anonymous mapping aliases nothing.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }
        .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
        let buf = Buffer {
            ptr,
            len: len.get(),
        };
        // SAFETY: ptr..ptr+len is the mapping made above.
        if let Err(e) = unsafe { mlock(buf.ptr, buf.len) } {
            return Err(std::io::Error::from_raw_os_error(e as i32)); // Drop unmaps
        }
        let base = buf.ptr.as_ptr().cast::<u8>();
        for off in (0..buf.len).step_by(PAGE) {
            // SAFETY: off < len, inside the writable mapping; volatile so the
            // store (which backs the page with real memory) is not elided.
            unsafe { base.add(off).write_volatile(0x5a) };
        }
        Ok(Some(buf))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing refers into it any more.
        let _ = unsafe { munmap(self.ptr, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_and_release() {
        assert!(Buffer::reserve(0).unwrap().is_none());
        // mlock of 1 MiB may exceed RLIMIT_MEMLOCK for unprivileged users;
        // the error is then a clean Err, which is also what we check.
        match Buffer::reserve(1) {
            Ok(Some(b)) => assert_eq!(b.len(), 1 << 20),
            Ok(None) => panic!("1 MiB gave no buffer"),
            Err(e) => assert!(
                matches!(
                    e.raw_os_error(),
                    Some(libc::ENOMEM) | Some(libc::EAGAIN) | Some(libc::EPERM)
                ),
                "{e}"
            ),
        }
    }
}
