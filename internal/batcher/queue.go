package batcher

// ring is a bounded FIFO. It grows by doubling up to limit, so a large
// QueueSize costs memory only when the queue is actually that long.
type ring[T comparable] struct {
	buf   []T
	head  int // index of the oldest element in buf
	n     int // elements queued
	limit int // QueueSize: push fails beyond it
}

func newRing[T comparable](limit int) ring[T] {
	return ring[T]{buf: make([]T, min(limit, 16)), limit: limit}
}

// idx maps a position (0 = oldest) to an index in buf.
func (q *ring[T]) idx(i int) int {
	i += q.head
	if i >= len(q.buf) {
		i -= len(q.buf)
	}
	return i
}

// push appends v and reports false when the queue is at its limit.
func (q *ring[T]) push(v T) bool {
	if q.n >= q.limit {
		return false
	}
	if q.n == len(q.buf) {
		q.grow()
	}
	q.buf[q.idx(q.n)] = v
	q.n++
	return true
}

func (q *ring[T]) grow() {
	nb := make([]T, min(2*len(q.buf), q.limit))
	for i := range q.n {
		nb[i] = q.buf[q.idx(i)]
	}
	q.buf, q.head = nb, 0
}

// peek returns the oldest element; the queue must not be empty.
func (q *ring[T]) peek() T { return q.buf[q.head] }

// pop removes and returns the oldest element; the queue must not be empty.
func (q *ring[T]) pop() T {
	var zero T
	v := q.buf[q.head]
	q.buf[q.head] = zero // drop the reference so the GC can collect it
	q.head = q.idx(1)
	q.n--
	return v
}

// remove deletes v wherever it is and reports whether it was found. It is
// O(n), but only abandoned requests (timeout, cancellation) take this path,
// and it shifts the shorter side of the ring.
func (q *ring[T]) remove(v T) bool {
	var zero T
	for i := range q.n {
		if q.buf[q.idx(i)] != v {
			continue
		}
		if i < q.n/2 {
			// Shift the older elements one step toward the tail.
			for j := i; j > 0; j-- {
				q.buf[q.idx(j)] = q.buf[q.idx(j-1)]
			}
			q.buf[q.head] = zero
			q.head = q.idx(1)
		} else {
			// Shift the newer elements one step toward the head.
			for j := i; j < q.n-1; j++ {
				q.buf[q.idx(j)] = q.buf[q.idx(j+1)]
			}
			q.buf[q.idx(q.n-1)] = zero
		}
		q.n--
		return true
	}
	return false
}
