// stream-writer: the load and the ground truth of lab/bench-stream.
//
//	stream-writer fill  -endpoints E -prefix P -keys K
//	    puts every key of the key space once (as fast as it can), unrecorded.
//	stream-writer write -endpoints E -prefix P -keys K -out FILE -phase steady:60s:2000 -phase burst:10s:20000
//	    puts random 1-4 KiB values to random keys at each phase's rate for its
//	    duration (open loop: a token per put at its due time, several goroutines
//	    taking them), and records every put's commit revision and the time its
//	    response came back. FILE holds 17-byte records, little endian:
//	    int64 revision, int64 unix ns, uint8 phase index; sorted by revision.
//	    One JSON line per phase on stdout: target and achieved rate, errors.
//	stream-writer dump  -endpoints E -prefix P [-rev N] -out FILE
//	    every key under the prefix at revision N (0: now), sorted, as
//	    "hex(key) sha256(value) len(value)" lines: what two clusters are compared by.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

type phaseFlag []phase

type phase struct {
	name    string
	dur     time.Duration
	rate    float64
	workers int
}

func (p *phaseFlag) String() string { return fmt.Sprint(*p) }

// name:duration:rate[:workers]; rate 0 is a pause
func (p *phaseFlag) Set(s string) error {
	parts := strings.Split(s, ":")
	if len(parts) < 3 || len(parts) > 4 {
		return fmt.Errorf("phase %q: want name:duration:rate[:workers]", s)
	}
	d, err := time.ParseDuration(parts[1])
	if err != nil {
		return fmt.Errorf("phase %q: %v", s, err)
	}
	r, err := strconv.ParseFloat(parts[2], 64)
	if err != nil || r < 0 {
		return fmt.Errorf("phase %q: bad rate", s)
	}
	// Enough puts in flight for the rate at ~50 ms a put (etcd's fsync on a
	// busy 2-core machine), never fewer than 32.
	w := max(32, int(r/20))
	if len(parts) == 4 {
		if w, err = strconv.Atoi(parts[3]); err != nil || w < 1 {
			return fmt.Errorf("phase %q: bad workers", s)
		}
	}
	*p = append(*p, phase{parts[0], d, r, w})
	return nil
}

type record struct {
	rev   int64
	ns    int64
	phase uint8
}

func main() {
	if len(os.Args) < 2 {
		die("usage: stream-writer fill|write|dump [flags]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	endpoints := fs.String("endpoints", "http://127.0.0.1:2379", "comma-separated etcd endpoints")
	prefix := fs.String("prefix", "/bench-stream/", "key prefix")
	keys := fs.Int("keys", 20000, "size of the key space")
	minV := fs.Int("min", 1024, "smallest value, bytes")
	maxV := fs.Int("max", 4096, "largest value, bytes")
	out := fs.String("out", "", "output file (write, dump)")
	rev := fs.Int64("rev", 0, "revision to dump (0: now)")
	workers := fs.Int("workers", 64, "concurrent puts (fill)")
	var phases phaseFlag
	fs.Var(&phases, "phase", "name:duration:rate[:workers] (write; repeatable)")
	_ = fs.Parse(os.Args[2:])

	cli, err := clientv3.New(clientv3.Config{
		Endpoints:          strings.Split(*endpoints, ","),
		DialTimeout:        5 * time.Second,
		MaxCallRecvMsgSize: 256 << 20,
	})
	if err != nil {
		die("connect: %v", err)
	}
	defer cli.Close()
	sp := space{prefix: *prefix, keys: *keys, minV: *minV, maxV: *maxV}
	switch os.Args[1] {
	case "fill":
		fill(cli, sp, *workers)
	case "write":
		if *out == "" || len(phases) == 0 {
			die("write needs -out and at least one -phase")
		}
		write(cli, sp, phases, *out)
	case "dump":
		if *out == "" {
			die("dump needs -out")
		}
		dump(cli, *prefix, *rev, *out)
	default:
		die("unknown command %q", os.Args[1])
	}
}

type space struct {
	prefix     string
	keys       int
	minV, maxV int
}

func (s space) key(i int) string { return fmt.Sprintf("%sk%06d", s.prefix, i) }

// A value of random bytes (incompressible: the worst case for the stream's
// zstd, and what keeps consecutive segments from sharing content).
func (s space) value(r *rand.Rand, c *rand.ChaCha8, buf []byte) []byte {
	n := s.minV + r.IntN(s.maxV-s.minV+1)
	v := buf[:n]
	_, _ = c.Read(v)
	return v
}

func seeded(i int) (*rand.Rand, *rand.ChaCha8) {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(time.Now().UnixNano())+uint64(i)*0x9e3779b97f4a7c15)
	return rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))), rand.NewChaCha8(seed)
}

func fill(cli *clientv3.Client, sp space, workers int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var errs atomic.Int64
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r, c := seeded(w)
			buf := make([]byte, sp.maxV)
			for {
				i := int(next.Add(1) - 1)
				if i >= sp.keys {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if _, err := cli.Put(ctx, sp.key(i), string(sp.value(r, c, buf))); err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintf(os.Stderr, "fill: put %s: %v\n", sp.key(i), err)
					}
				}
				cancel()
			}
		}(w)
	}
	wg.Wait()
	if errs.Load() > 0 {
		die("fill: %d puts failed", errs.Load())
	}
	fmt.Fprintf(os.Stderr, "filled %d keys in %.1fs\n", sp.keys, time.Since(start).Seconds())
}

type phaseResult struct {
	Phase      string  `json:"phase"`
	Seconds    float64 `json:"seconds"`
	TargetRate float64 `json:"target_rate"`
	Workers    int     `json:"workers"`
	Puts       int64   `json:"puts"`
	Errors     int64   `json:"errors"`
	Dropped    int64   `json:"dropped"`
	Rate       float64 `json:"rate"`
	FirstRev   int64   `json:"first_rev"`
	LastRev    int64   `json:"last_rev"`
	StartNs    int64   `json:"start_ns"`
	EndNs      int64   `json:"end_ns"`
}

func write(cli *clientv3.Client, sp space, phases []phase, out string) {
	var all []record
	enc := json.NewEncoder(os.Stdout)
	for pi, ph := range phases {
		recs, res := runPhase(cli, sp, ph, uint8(pi))
		all = append(all, recs...)
		_ = enc.Encode(res)
		if res.TargetRate > 0 && res.Puts == 0 {
			die("phase %s: every put failed", ph.name)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].rev < all[j].rev })
	f, err := os.Create(out)
	if err != nil {
		die("%v", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var b [17]byte
	for _, r := range all {
		binary.LittleEndian.PutUint64(b[0:], uint64(r.rev))
		binary.LittleEndian.PutUint64(b[8:], uint64(r.ns))
		b[16] = r.phase
		_, _ = w.Write(b[:])
	}
	if err := w.Flush(); err != nil {
		die("%v", err)
	}
	if err := f.Close(); err != nil {
		die("%v", err)
	}
}

// runPhase offers ph.rate puts a second for ph.dur: a dispatcher hands out a
// token per put when it falls due; tokens no worker is free to take stay owed
// and go out as soon as one is, until the phase's time is up (what is still
// owed then is counted as dropped: the rate was not reached).
// A phase of rate 0 is a pause: no puts for its duration.
func runPhase(cli *clientv3.Client, sp space, ph phase, pi uint8) ([]record, phaseResult) {
	if ph.rate == 0 {
		start := time.Now()
		time.Sleep(ph.dur)
		return nil, phaseResult{Phase: ph.name, Seconds: ph.dur.Seconds(),
			StartNs: start.UnixNano(), EndNs: time.Now().UnixNano()}
	}
	tokens := make(chan struct{}, ph.workers)
	results := make([][]record, ph.workers)
	var errs atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < ph.workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r, c := seeded(int(pi)*100000 + w)
			buf := make([]byte, sp.maxV)
			recs := make([]record, 0, int(ph.rate*ph.dur.Seconds())/ph.workers+16)
			for range tokens {
				k := sp.key(r.IntN(sp.keys))
				v := sp.value(r, c, buf)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				resp, err := cli.Put(ctx, k, string(v))
				now := time.Now().UnixNano()
				cancel()
				if err != nil {
					if errs.Add(1) == 1 {
						fmt.Fprintf(os.Stderr, "put %s: %v\n", k, err)
					}
					continue
				}
				recs = append(recs, record{resp.Header.Revision, now, pi})
			}
			results[w] = recs
		}(w)
	}
	start := time.Now()
	total := int64(ph.rate * ph.dur.Seconds())
	var sent int64
	tick := time.NewTicker(time.Millisecond)
dispatch:
	for now := range tick.C {
		el := now.Sub(start)
		if el >= ph.dur {
			break
		}
		due := min(total, int64(el.Seconds()*ph.rate)+1)
		for sent < due {
			select {
			case tokens <- struct{}{}:
				sent++
			default:
				continue dispatch
			}
		}
	}
	tick.Stop()
	close(tokens)
	wg.Wait()
	end := time.Now()
	var recs []record
	for _, r := range results {
		recs = append(recs, r...)
	}
	res := phaseResult{
		Phase: ph.name, TargetRate: ph.rate, Workers: ph.workers,
		Puts: int64(len(recs)), Errors: errs.Load(), Dropped: total - sent,
		StartNs: start.UnixNano(), EndNs: end.UnixNano(),
		Seconds: end.Sub(start).Seconds(),
	}
	res.Rate = float64(res.Puts) / res.Seconds
	if len(recs) > 0 {
		res.FirstRev, res.LastRev = recs[0].rev, recs[0].rev
		for _, r := range recs {
			res.FirstRev = min(res.FirstRev, r.rev)
			res.LastRev = max(res.LastRev, r.rev)
		}
	}
	return recs, res
}

func dump(cli *clientv3.Client, prefix string, rev int64, out string) {
	f, err := os.Create(out)
	if err != nil {
		die("%v", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	end := clientv3.GetPrefixRangeEnd(prefix)
	from := prefix
	n := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(1000),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := cli.Get(ctx, from, opts...)
		cancel()
		if err != nil {
			die("dump at revision %d: %v", rev, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision // every page at the first page's revision
		}
		for _, kv := range resp.Kvs {
			sum := sha256.Sum256(kv.Value)
			fmt.Fprintf(w, "%s %s %d\n", hex.EncodeToString(kv.Key), hex.EncodeToString(sum[:]), len(kv.Value))
			n++
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	if err := w.Flush(); err != nil {
		die("%v", err)
	}
	if err := f.Close(); err != nil {
		die("%v", err)
	}
	fmt.Fprintf(os.Stderr, "dumped %d keys at revision %d\n", n, rev)
}

func die(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "stream-writer: "+format+"\n", a...)
	os.Exit(1)
}
