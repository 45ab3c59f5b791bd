;; Prints a header block, then 4 MiB of `a` in 64 writes of 64 KiB: more output than a request
;; granted a few MB may make the pod hold. A failed write traps.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; The iovec at 0 (pointer, length), the count written at 8, the header at 16, and 64 KiB of `a`
  ;; in the second page (filled at run time).
  (data (i32.const 16) "content-type: text/plain\n\n")
  (func (export "_start")
    (local $i i32)
    (memory.fill (i32.const 65536) (i32.const 97) (i32.const 65536))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 26))
    (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)) (then unreachable))
    (i32.store (i32.const 0) (i32.const 65536))
    (i32.store (i32.const 4) (i32.const 65536))
    (block $done
      (loop $again
        (br_if $done (i32.ge_u (local.get $i) (i32.const 64)))
        (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)) (then unreachable))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $again)))))
