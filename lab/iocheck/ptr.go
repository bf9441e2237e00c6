package iocheck

import "unsafe"

// uintptrOf is the address of b's first byte (only to align it).
func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }
