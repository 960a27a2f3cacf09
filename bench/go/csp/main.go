// Go anchor for tern's "csp" benchmark suite (bench/compare.sh csp).
//
// Each subcommand does the same work as the matching subcommand of the C
// program bench/csp_bench.c and prints its measured figure on stdout (the
// mutex subcommand prints two: ns per pair and the hand-off percentage);
// notes go to stderr.
//
//	pingpong-1p [n]   unbuffered ping-pong between two goroutines, GOMAXPROCS=1;
//	                  n one-way messages; ns per message
//	pingpong [n]      the same with the default GOMAXPROCS
//	buffered [n]      cap-1024 channel, one producer, one consumer, n ints; ns per item
//	select4 [n]       4 producers, each feeding its own cap-64 channel; the
//	                  consumer selects over the 4; n selects; ns per select
//	mutex [n]         two goroutines, GOMAXPROCS=2, n lock/unlock pairs in total
//	                  on one sync.Mutex, released together by closing a channel;
//	                  prints "ns-per-pair handoff-percent"
//	waitgroup [n] [reps]
//	                  start n goroutines that each call Done on a WaitGroup,
//	                  then Wait; one untimed wave, then reps timed waves;
//	                  mean ns per goroutine
//	pool-1p|pool-2p [n]
//	                  GOMAXPROCS=1 or 2, one goroutine per P, each doing n/procs
//	                  sync.Pool Get+Put pairs of a 64-byte object, started
//	                  together; ns per pair (wall / n, as RunParallel reports)
//
// Only the standard library is used.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

func argInt(i int, def int) int {
	if len(os.Args) > i {
		v, err := strconv.Atoi(os.Args[i])
		if err != nil || v <= 0 {
			fmt.Fprintf(os.Stderr, "bad number %q\n", os.Args[i])
			os.Exit(2)
		}
		return v
	}
	return def
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "go csp: "+format+"\n", a...)
	os.Exit(1)
}

// pingpong: the main goroutine sends i on ping, B receives it and sends it
// back on pong; n/2 round trips, so n one-way messages.  ns per message.
func pingpong(n int, label string) float64 {
	rounds := n / 2
	if rounds < 1 {
		rounds = 1
	}
	ping := make(chan int)
	pong := make(chan int)
	start := time.Now()
	go func() {
		for i := 0; i < rounds; i++ {
			v := <-ping
			pong <- v
		}
	}()
	for i := 0; i < rounds; i++ {
		ping <- i
		if v := <-pong; v != i {
			fail("pingpong: sent %d, got back %d", i, v)
		}
	}
	el := time.Since(start)
	fmt.Fprintf(os.Stderr, "go %s: %d messages, GOMAXPROCS=%d, %.1f ms\n",
		label, 2*rounds, runtime.GOMAXPROCS(0), float64(el.Microseconds())/1000)
	return float64(el.Nanoseconds()) / float64(2*rounds)
}

// buffered: one producer sends 0..n-1 into a cap-1024 channel and closes
// it; the main goroutine receives until closed.  ns per item.
func buffered(n int) float64 {
	ch := make(chan int, 1024)
	start := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			ch <- i
		}
		close(ch)
	}()
	var sum, cnt int64
	for v := range ch {
		sum += int64(v)
		cnt++
	}
	el := time.Since(start)
	if want := int64(n) * int64(n-1) / 2; cnt != int64(n) || sum != want {
		fail("buffered: received %d items summing to %d, want %d summing to %d", cnt, sum, n, want)
	}
	fmt.Fprintf(os.Stderr, "go buffered: %d items, cap 1024, GOMAXPROCS=%d, %.1f ms\n",
		n, runtime.GOMAXPROCS(0), float64(el.Microseconds())/1000)
	return float64(el.Nanoseconds()) / float64(n)
}

// select4: four producers, producer k sending n/4 values into its own
// cap-64 channel; the main goroutine does n/4*4 selects over the four
// receives.  Which channels are ready at a select depends on how the
// producers happen to run.  ns per select.
func select4(n int) float64 {
	per := n / 4
	if per < 1 {
		per = 1
	}
	var chs [4]chan int
	for k := range chs {
		chs[k] = make(chan int, 64)
	}
	start := time.Now()
	for k := range chs {
		go func(c chan int) {
			for i := 0; i < per; i++ {
				c <- i
			}
		}(chs[k])
	}
	var hits [4]int
	var sum int64
	total := 4 * per
	c0, c1, c2, c3 := chs[0], chs[1], chs[2], chs[3]
	for i := 0; i < total; i++ {
		var v int
		select {
		case v = <-c0:
			hits[0]++
		case v = <-c1:
			hits[1]++
		case v = <-c2:
			hits[2]++
		case v = <-c3:
			hits[3]++
		}
		sum += int64(v)
	}
	el := time.Since(start)
	if want := 4 * int64(per) * int64(per-1) / 2; sum != want {
		fail("select4: values sum to %d, want %d", sum, want)
	}
	fmt.Fprintf(os.Stderr, "go select4: %d selects, GOMAXPROCS=%d, %.1f ms, cases fired %d/%d/%d/%d\n",
		total, runtime.GOMAXPROCS(0), float64(el.Microseconds())/1000,
		hits[0], hits[1], hits[2], hits[3])
	return float64(el.Nanoseconds()) / float64(total)
}

// mutex: two goroutines on GOMAXPROCS=2 each do n/2 lock/unlock pairs on
// one sync.Mutex.  Inside the critical section each notes whether the
// previous holder was the other goroutine (a hand-off).  Returns ns per
// pair and the percentage of acquisitions that changed hands.
func mutex(n int) (float64, float64) {
	runtime.GOMAXPROCS(2)
	per := n / 2
	if per < 1 {
		per = 1
	}
	var mu sync.Mutex
	owner := 0 // 1 or 2 once taken; guarded by mu
	var handoffs, count int64
	var ready, wg sync.WaitGroup
	startCh := make(chan struct{})
	ready.Add(2)
	wg.Add(2)
	for id := 1; id <= 2; id++ {
		go func(me int) {
			// Start together so that the two really contend: say we
			// are here, then wait for startCh to close.
			ready.Done()
			<-startCh
			for i := 0; i < per; i++ {
				mu.Lock()
				if owner != me {
					if owner != 0 {
						handoffs++
					}
					owner = me
				}
				count++
				mu.Unlock()
			}
			wg.Done()
		}(id)
	}
	ready.Wait()
	start := time.Now()
	close(startCh)
	wg.Wait()
	el := time.Since(start)
	if count != int64(2*per) {
		fail("mutex: counter %d, want %d", count, 2*per)
	}
	pct := 100 * float64(handoffs) / float64(count)
	fmt.Fprintf(os.Stderr, "go mutex: %d lock/unlock pairs, GOMAXPROCS=%d, %.1f ms, %d hand-offs (%.4f%% of acquisitions changed hands)\n",
		count, runtime.GOMAXPROCS(0), float64(el.Microseconds())/1000, handoffs, pct)
	return float64(el.Nanoseconds()) / float64(count), pct
}

// waitgroup: start n goroutines, each calling wg.Done(), then wg.Wait();
// one untimed wave, then reps timed ones.  Mean ns per goroutine.
func waitgroup(n, reps int) float64 {
	var wg sync.WaitGroup
	wave := func() time.Duration {
		start := time.Now()
		wg.Add(n)
		for i := 0; i < n; i++ {
			go func() { wg.Done() }()
		}
		wg.Wait()
		return time.Since(start)
	}
	wave()
	var total time.Duration
	best := time.Duration(1 << 62)
	for r := 0; r < reps; r++ {
		d := wave()
		total += d
		if d < best {
			best = d
		}
	}
	fmt.Fprintf(os.Stderr, "go waitgroup: %d waves of %d goroutines, GOMAXPROCS=%d, mean %.1f ms, best %.1f ms per wave\n",
		reps, n, runtime.GOMAXPROCS(0), float64(total.Microseconds())/1000/float64(reps),
		float64(best.Microseconds())/1000)
	return float64(total.Nanoseconds()) / float64(n*reps)
}

func poolBench(n, procs int) float64 {
	runtime.GOMAXPROCS(procs)
	p := sync.Pool{New: func() any { return new([64]byte) }}
	each := n / procs
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < procs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for k := 0; k < each; k++ {
				o := p.Get().(*[64]byte)
				o[0]++
				p.Put(o)
			}
		}()
	}
	time.Sleep(10 * time.Millisecond)
	t0 := time.Now()
	close(start)
	wg.Wait()
	d := time.Since(t0)
	fmt.Fprintf(os.Stderr, "go pool-%dp: %d procs\n", procs, procs)
	return float64(d.Nanoseconds()) / float64(each*procs)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: csp pingpong-1p|pingpong|buffered|select4|mutex|waitgroup|pool-1p|pool-2p [n] [reps]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "pingpong-1p":
		runtime.GOMAXPROCS(1)
		fmt.Printf("%.1f\n", pingpong(argInt(2, 2000000), "pingpong-1p"))
	case "pingpong":
		fmt.Printf("%.1f\n", pingpong(argInt(2, 2000000), "pingpong"))
	case "buffered":
		fmt.Printf("%.1f\n", buffered(argInt(2, 10000000)))
	case "select4":
		fmt.Printf("%.1f\n", select4(argInt(2, 2000000)))
	case "mutex":
		ns, pct := mutex(argInt(2, 10000000))
		fmt.Printf("%.1f %.4f\n", ns, pct)
	case "pool-1p":
		fmt.Printf("%.1f\n", poolBench(argInt(2, 20000000), 1))
	case "pool-2p":
		fmt.Printf("%.1f\n", poolBench(argInt(2, 20000000), 2))
	case "waitgroup":
		fmt.Printf("%.1f\n", waitgroup(argInt(2, 100000), argInt(3, 10)))
	default:
		fmt.Fprintf(os.Stderr, "unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
}
