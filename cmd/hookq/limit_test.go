package main

import (
	"net"
	"testing"
	"time"
)

func TestLimitListener(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := limitConns(inner, 2)
	defer l.Close()

	accepted := make(chan net.Conn, 3)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	first, second := <-accepted, <-accepted
	select {
	case <-accepted:
		t.Fatal("a third connection was accepted over the cap of 2")
	case <-time.After(100 * time.Millisecond):
	}
	// Closing one (twice: the slot is given back once) lets the third in.
	first.Close()
	first.Close()
	third := <-accepted
	select {
	case c := <-accepted:
		t.Fatalf("accepted %v beyond the cap", c)
	case <-time.After(100 * time.Millisecond):
	}
	second.Close()
	third.Close()

	// Close wakes an Accept that waits for a slot or a connection.
	l.Close()
	if _, ok := <-accepted; ok {
		t.Error("Accept returned a connection after Close")
	}
}
