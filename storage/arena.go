package storage

// arena holds the values that the committer's transactions put. bbolt
// keeps a reference to a value until its transaction ends, so a value
// cannot be encoded into a buffer reused at once; but once a transaction
// has ended, bbolt has copied its values into pages or dropped them, and
// the memory can hold the values of the next one. So the committer encodes
// into chunks it reuses from one commit to the next, instead of allocating
// each record (two or three per task) for the garbage collector.
//
// An arena belongs to one goroutine. A nil *arena allocates each value.
type arena struct {
	chunks [][]byte
	cur    int // the chunk values go to
	off    int // the start of its free memory
	// free is the capacity of the slice next returned, to tell in keep
	// whether the value was appended in place.
	free int
}

const (
	arenaChunk = 64 << 10
	// arenaMinFree is the free memory below which next moves on to
	// another chunk rather than let a record overflow.
	arenaMinFree = 2 << 10
	// arenaKeep bounds the chunks kept from one transaction to the next
	// (2 MiB), so a burst of large values is not held for ever.
	arenaKeep = 32
)

// reset makes the whole arena free. Call it only when no transaction that
// holds its values is open.
func (a *arena) reset() {
	if a == nil {
		return
	}
	if len(a.chunks) > arenaKeep {
		clear(a.chunks[arenaKeep:])
		a.chunks = a.chunks[:arenaKeep]
	}
	a.cur, a.off, a.free = 0, 0, 0
}

// next returns an empty slice to append one value of about size bytes to.
// Pass the value to keep once it is appended.
func (a *arena) next(size int) []byte {
	if a == nil {
		return make([]byte, 0, size)
	}
	if size > arenaChunk/4 {
		a.free = 0 // keep then leaves it alone
		return make([]byte, 0, size)
	}
	if len(a.chunks) == 0 || arenaChunk-a.off < max(size, arenaMinFree) {
		if len(a.chunks) > 0 {
			a.cur++
		}
		if a.cur == len(a.chunks) {
			a.chunks = append(a.chunks, make([]byte, arenaChunk))
		}
		a.off = 0
	}
	b := a.chunks[a.cur][a.off:a.off:arenaChunk]
	a.free = cap(b)
	return b
}

// keep takes the memory of v, a value appended to the slice next returned,
// and returns v with no room to append to: appending would overwrite the
// next value. A value that outgrew that slice was moved by append, and
// holds no arena memory.
func (a *arena) keep(v []byte) []byte {
	if a != nil && cap(v) == a.free {
		a.off += len(v)
		a.free = 0
	}
	return v[:len(v):len(v)]
}
