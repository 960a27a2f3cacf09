// Go anchor for tern's "runtime" benchmark suite (bench/compare.sh runtime).
//
// Each subcommand does the same work as the matching C program in bench/
// and prints one number (the measured figure) on stdout; notes go to stderr.
//
//	spawn-waves [n] [wave]   start+join n empty goroutines, wave at a time; ns each
//	spawn-all [n]            start n empty goroutines all at once, then join; ns each
//	yield [n]                two goroutines Gosched to each other, GOMAXPROCS=1; ns per switch
//	parked [n] [settle_ms]   n goroutines parked on a channel receive; peak RSS bytes each
//	                         (with settle_ms: RSS that long after all parked)
//	wake [rounds] [sleep|yield]
//	                         cross-thread wake latency through a cap-1 channel,
//	                         GOMAXPROCS=2; median ns
//
// Only the standard library is used.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// spawnJoin starts n empty goroutines in waves of `wave` (wave == n: all at
// once) and joins each wave with a sync.WaitGroup.  Returns ns per goroutine.
func spawnJoin(n, wave int) float64 {
	var wg sync.WaitGroup
	start := time.Now()
	for done := 0; done < n; {
		k := wave
		if n-done < k {
			k = n - done
		}
		wg.Add(k)
		for i := 0; i < k; i++ {
			go func() { wg.Done() }()
		}
		wg.Wait()
		done += k
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

// yield: two goroutines on one P, each calling runtime.Gosched n/2 times.
func yield(n int) float64 {
	runtime.GOMAXPROCS(1)
	var wg sync.WaitGroup
	per := n / 2
	wg.Add(2)
	start := time.Now()
	for j := 0; j < 2; j++ {
		go func() {
			for i := 0; i < per; i++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	return float64(time.Since(start).Nanoseconds()) / float64(2*per)
}

// statusKB reads a "Key:   123 kB" line from /proc/self/status.
func statusKB(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, key+":") {
			fs := strings.Fields(line[len(key)+1:])
			v, _ := strconv.ParseInt(fs[0], 10, 64)
			return v
		}
	}
	fmt.Fprintf(os.Stderr, "%s not in /proc/self/status\n", key)
	os.Exit(1)
	return 0
}

// parked: n goroutines each blocked receiving from a channel nobody sends
// on (Go's cheapest way to park a goroutine; the issue compares against
// "each asleep, or on a channel").  Peak RSS (VmHWM) after all are parked,
// minus VmRSS before spawning, divided by n.  With settleMs > 0, VmRSS
// settleMs after all are parked instead of the peak (tern's rt_parked_rss
// the same).  Exits without waiting.
func parked(n, settleMs int) {
	var ready int64
	ch := make(chan struct{})
	before := statusKB("VmRSS")
	start := time.Now()
	for i := 0; i < n; i++ {
		go func() {
			atomic.AddInt64(&ready, 1)
			<-ch
		}()
	}
	for atomic.LoadInt64(&ready) < int64(n) {
		time.Sleep(time.Millisecond)
	}
	// Each has counted itself and is about to park or parked: let the
	// last ones get there.
	time.Sleep(50 * time.Millisecond)
	spawned := time.Since(start)
	time.Sleep(time.Duration(settleMs) * time.Millisecond)
	hwm := statusKB("VmHWM")
	rss := statusKB("VmRSS")
	after := hwm
	if settleMs > 0 {
		after = rss
	}
	per := float64(after-before) * 1024 / float64(n)
	fmt.Fprintf(os.Stderr, "go parked: %d goroutines on a channel receive, rss before %d kB, hwm %d kB, rss now %d kB (%d ms after), %.0f ms to park all\n",
		n, before, hwm, rss, settleMs, float64(spawned.Microseconds())/1000)
	fmt.Printf("%.0f\n", per)
	os.Exit(0)
}

// wake: A (this goroutine) waits until B is parked on <-ch, lets 50 us pass
// (time.Sleep, or with "yield" a Gosched loop), notes t0, sends on a cap-1
// channel and then busy-spins 200 us without yielding, so B has to be run
// by the other P.  B notes t1 as soon as it runs.  Median t1-t0.
// (Go puts the woken B in A's P's runnext; the other P steals a runnext
// only after usleep(3), which Linux timer slack stretches to ~50 us.)
func wake(rounds int, settleYield bool) float64 {
	runtime.GOMAXPROCS(2)
	const spin = 200 * time.Microsecond
	const settle = 50 * time.Microsecond
	base := time.Now()
	now := func() int64 { return int64(time.Since(base)) }
	ch := make(chan struct{}, 1)
	lat := make([]int64, rounds)
	var ready int64 = -1 // round B is ready (about to park) for
	var t0 int64
	go func() {
		for r := 0; r < rounds; r++ {
			atomic.StoreInt64(&ready, int64(r))
			<-ch
			t1 := now()
			lat[r] = t1 - atomic.LoadInt64(&t0)
		}
		atomic.StoreInt64(&ready, int64(rounds))
	}()
	for r := 0; r < rounds; r++ {
		for atomic.LoadInt64(&ready) != int64(r) {
			runtime.Gosched()
		}
		// B said it is about to park; give it time to get there (and its
		// P time to go idle).
		if settleYield {
			for s := now(); now()-s < int64(settle); {
				runtime.Gosched()
			}
		} else {
			time.Sleep(settle)
		}
		t := now()
		atomic.StoreInt64(&t0, t)
		ch <- struct{}{}
		for now()-t < int64(spin) {
		}
	}
	for atomic.LoadInt64(&ready) != int64(rounds) {
		runtime.Gosched()
	}
	slow := 0
	for _, l := range lat {
		if l > int64(150*time.Microsecond) {
			slow++
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	mode := "sleep"
	if settleYield {
		mode = "yield"
	}
	fmt.Fprintf(os.Stderr, "go wake (%s settle): %d rounds, %d over 150 us, p10 %d ns, p50 %d ns, p90 %d ns, max %d ns\n",
		mode, rounds, slow, lat[rounds/10], lat[rounds/2], lat[rounds*9/10], lat[rounds-1])
	return float64(lat[rounds/2])
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rt spawn-waves|spawn-all|yield|parked|wake [n] [wave]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "spawn-waves":
		n := argInt(2, 1000000)
		fmt.Printf("%.1f\n", spawnJoin(n, argInt(3, 10000)))
	case "spawn-all":
		n := argInt(2, 1000000)
		fmt.Printf("%.1f\n", spawnJoin(n, n))
	case "yield":
		fmt.Printf("%.1f\n", yield(argInt(2, 10000000)))
	case "parked":
		settle := 0
		if len(os.Args) > 3 {
			settle = argInt(3, 0)
		}
		parked(argInt(2, 1000000), settle)
	case "wake":
		yieldMode := false
		if len(os.Args) > 3 {
			switch os.Args[3] {
			case "yield":
				yieldMode = true
			case "sleep":
			default:
				fmt.Fprintln(os.Stderr, "usage: runtime wake [rounds] [sleep|yield]")
				os.Exit(2)
			}
		}
		fmt.Printf("%.0f\n", wake(argInt(2, 2000), yieldMode))
	default:
		fmt.Fprintf(os.Stderr, "unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
}
