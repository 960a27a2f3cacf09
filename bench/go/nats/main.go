// NATS anchor for bench/compare.sh data: nats.go with its defaults.
//
//	nats pub <addr> <n> <size>   one connection publishes n messages of size
//	                             bytes to a subject nobody subscribes, then
//	                             Flush; prints msgs/s
//	nats sub <addr> <n> <size>   one connection publishes n messages (as
//	                             above), another receives them through an
//	                             async handler (pending limits off: nothing
//	                             dropped); prints msgs/s from the first
//	                             message received to the last
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

func die(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func pub(nc *nats.Conn, subj string, n int, msg []byte) {
	for i := 0; i < n; i++ {
		if err := nc.Publish(subj, msg); err != nil {
			die(err)
		}
	}
	if err := nc.Flush(); err != nil {
		die(err)
	}
}

func main() {
	if len(os.Args) != 5 {
		die(fmt.Errorf("usage: nats pub|sub addr n size"))
	}
	addr := "nats://" + os.Args[2]
	n, _ := strconv.Atoi(os.Args[3])
	size, _ := strconv.Atoi(os.Args[4])
	msg := make([]byte, size)
	pc, err := nats.Connect(addr)
	if err != nil {
		die(err)
	}
	defer pc.Close()
	switch os.Args[1] {
	case "pub":
		t0 := time.Now()
		pub(pc, "bench.pub", n, msg)
		fmt.Printf("%.0f\n", float64(n)/time.Since(t0).Seconds())
	case "sub":
		sc, err := nats.Connect(addr)
		if err != nil {
			die(err)
		}
		defer sc.Close()
		var wg sync.WaitGroup
		wg.Add(1)
		var t0 time.Time
		got := 0
		sub, err := sc.Subscribe("bench.sub", func(m *nats.Msg) {
			if got == 0 {
				t0 = time.Now()
			}
			got++
			if got == n {
				wg.Done()
			}
		})
		if err != nil {
			die(err)
		}
		sub.SetPendingLimits(-1, -1)
		if err := sc.Flush(); err != nil {
			die(err)
		}
		pub(pc, "bench.sub", n, msg)
		wg.Wait()
		fmt.Printf("%.0f\n", float64(n-1)/time.Since(t0).Seconds())
	default:
		die(fmt.Errorf("unknown %s", os.Args[1]))
	}
}
