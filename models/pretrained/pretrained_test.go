package pretrained_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/convlens/convlens/internal/testutil"
	"github.com/convlens/convlens/models"
	"github.com/convlens/convlens/models/pretrained"
)

// server serves body at /model with the given status, counting requests;
// with truncate it announces the full length but sends half and hangs up.
func server(t *testing.T, body []byte, status int, truncate bool) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if status != http.StatusOK {
			http.Error(w, "broken", status)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if truncate {
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // Drops the connection mid-body.
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// tarGz packs files into a .tar.gz, as the ONNX model zoo ships its models.
func tarGz(t *testing.T, files map[string][]byte) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func tinySpec(t *testing.T, url string, body []byte, archive bool) pretrained.Spec {
	return pretrained.Spec{Name: "tiny", URL: url + "/model", Archive: archive, SHA256: sha(body), Size: int64(len(body)),
		Normalization: models.ImageNet, Labels: []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}}
}

func cacheFiles(t *testing.T, dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestPretrainedDownloadGoodArchiveThenCacheHit(t *testing.T) {
	onnx, err := os.ReadFile(testutil.Testdata("tinycnn", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	archive := tarGz(t, map[string][]byte{"tiny/README": []byte("x"), "tiny/model.onnx": onnx})
	srv, hits := server(t, archive, http.StatusOK, false)
	cache := t.TempDir()
	var progress int64
	d := pretrained.Downloader{CacheDir: cache, Progress: func(_ string, done, total int64) {
		if total != int64(len(archive)) {
			t.Errorf("progress total %d, want %d", total, len(archive))
		}
		progress = done
	}}
	spec := tinySpec(t, srv.URL, archive, true)
	m, err := d.LoadSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	if progress != int64(len(archive)) {
		t.Errorf("progress ended at %d of %d bytes", progress, len(archive))
	}
	if len(m.Layers()) == 0 || m.Labels()[2] != "c" || m.Input().Height != 64 {
		t.Errorf("loaded model: %d layers, labels %v, input %+v", len(m.Layers()), m.Labels(), m.Input())
	}
	if _, err := d.LoadSpec(spec); err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 1 {
		t.Errorf("%d requests for two loads, want 1 (cache hit)", hits.Load())
	}
	if files := cacheFiles(t, cache); len(files) != 1 {
		t.Errorf("cache holds %v, want the one archive", files)
	}
}

func TestPretrainedDownloadFailuresLeaveNothing(t *testing.T) {
	onnx, err := os.ReadFile(testutil.Testdata("tinycnn", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		status   int
		truncate bool
		spec     func(pretrained.Spec) pretrained.Spec
		want     string
	}{
		{"wrong checksum", http.StatusOK, false, func(s pretrained.Spec) pretrained.Spec {
			s.SHA256 = strings.Repeat("0", 64)
			return s
		}, "does not match the expected"},
		{"truncated transfer", http.StatusOK, true, func(s pretrained.Spec) pretrained.Spec { return s }, "transfer broke off"},
		{"server error", http.StatusInternalServerError, false, func(s pretrained.Spec) pretrained.Spec { return s }, "server answered 500"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv, _ := server(t, onnx, c.status, c.truncate)
			cache := t.TempDir()
			d := pretrained.Downloader{CacheDir: cache}
			spec := c.spec(tinySpec(t, srv.URL, onnx, false))
			_, err := d.LoadSpec(spec)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			path, _ := d.Path(spec)
			// The message tells an offline user what to fetch and where to put it.
			if !strings.Contains(err.Error(), spec.URL) || !strings.Contains(err.Error(), path) {
				t.Errorf("message lacks the URL or the cache path: %v", err)
			}
			if files := cacheFiles(t, cache); len(files) != 0 {
				t.Errorf("the failed download left %v in the cache", files)
			}
		})
	}
}

func TestPretrainedDamagedCacheIsRejected(t *testing.T) {
	onnx, err := os.ReadFile(testutil.Testdata("tinycnn", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	d := pretrained.Downloader{CacheDir: t.TempDir()}
	spec := tinySpec(t, "http://127.0.0.1:1", onnx, false)
	path, _ := d.Path(spec)
	if err := os.WriteFile(path, onnx[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.LoadSpec(spec); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged cache file: %v", err)
	}
}

func TestPretrainedCatalogue(t *testing.T) {
	for _, name := range pretrained.Names() {
		s, ok := pretrained.Lookup(name)
		if !ok {
			t.Errorf("%s is listed but Lookup does not know it", name)
			continue
		}
		if len(s.SHA256) != 64 || strings.Trim(s.SHA256, "0123456789abcdef") != "" || s.Size <= 0 || len(s.Labels) != 1000 {
			t.Errorf("%s: SHA-256 %q, size %d, %d labels", name, s.SHA256, s.Size, len(s.Labels))
		}
		// Every address names the same zoo file, the one the spec is named after.
		file := path.Base(s.URL)
		if strings.TrimSuffix(strings.TrimSuffix(file, ".onnx"), ".tar.gz") != s.Name || s.Archive != strings.HasSuffix(file, ".tar.gz") {
			t.Errorf("%s: spec %q (archive %v) at %s", name, s.Name, s.Archive, s.URL)
		}
		if len(s.Mirrors) == 0 {
			t.Errorf("%s: no mirror", name)
		}
		for _, u := range append([]string{s.URL}, s.Mirrors...) {
			if !strings.HasPrefix(u, "https://") || path.Base(u) != file {
				t.Errorf("%s: address %s, want https and the file %s", name, u, file)
			}
		}
	}
	// The short names stand for the newest opset of each network, and share its cache file.
	d := pretrained.Downloader{CacheDir: t.TempDir()}
	for short, full := range map[string]string{"vgg16": "vgg16-12", "resnet50": "resnet50-v1-12", "resnet18": "resnet18-v2-7"} {
		s, ok := pretrained.Lookup(short)
		f, _ := pretrained.Lookup(full)
		ps, _ := d.Path(s)
		pf, _ := d.Path(f)
		if !ok || s.Name != full || ps != pf {
			t.Errorf("%s: spec %q cached at %s, want %s's at %s", short, s.Name, ps, full, pf)
		}
	}
	for _, old := range []string{"vgg16-7", "resnet50-v1-7"} {
		if s, ok := pretrained.Lookup(old); !ok || !s.Archive {
			t.Errorf("%s: %v, want the zoo's .tar.gz", old, ok)
		}
	}
	// A spec is the caller's to change.
	s, _ := pretrained.Lookup("vgg16")
	s.Mirrors[0] = "http://elsewhere"
	if s, _ := pretrained.Lookup("vgg16"); s.Mirrors[0] == "http://elsewhere" {
		t.Error("changing a looked-up spec's mirrors changed the catalogue")
	}
	labels := pretrained.ImageNetLabels()
	// Index 281 is "tabby" in every ImageNet class list (torchvision's, Keras').
	if len(labels) != 1000 || labels[281] != "tabby" {
		t.Errorf("%d labels, [281] = %q", len(labels), labels[281])
	}
	if _, err := (pretrained.Downloader{CacheDir: filepath.Join(t.TempDir())}).Load("alexnet-9000"); err == nil || !strings.Contains(err.Error(), "vgg16-12") {
		t.Errorf("unknown name: %v", err)
	}
}

// A failing address passes the download on to the next mirror; the error of
// a download that fails everywhere says what each address did.
func TestPretrainedDownloadFallsBackToMirrors(t *testing.T) {
	onnx, err := os.ReadFile(testutil.Testdata("tinycnn", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	sameLength := bytes.Repeat([]byte("x"), len(onnx))
	for _, c := range []struct {
		name  string
		first func(t *testing.T) (url string, hits *atomic.Int32)
	}{
		{"unavailable", func(t *testing.T) (string, *atomic.Int32) {
			srv, hits := server(t, onnx, http.StatusServiceUnavailable, false)
			return srv.URL, hits
		}},
		{"wrong body of the right length", func(t *testing.T) (string, *atomic.Int32) {
			srv, hits := server(t, sameLength, http.StatusOK, false)
			return srv.URL, hits
		}},
		{"error page", func(t *testing.T) (string, *atomic.Int32) {
			srv, hits := server(t, []byte("<html>rate limited</html>"), http.StatusOK, false)
			return srv.URL, hits
		}},
		{"truncated", func(t *testing.T) (string, *atomic.Int32) {
			srv, hits := server(t, onnx, http.StatusOK, true)
			return srv.URL, hits
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			first, firstHits := c.first(t)
			mirror, mirrorHits := server(t, onnx, http.StatusOK, false)
			var progress int64
			d := pretrained.Downloader{CacheDir: t.TempDir(), Progress: func(_ string, done, _ int64) { progress = done }}
			spec := tinySpec(t, first, onnx, false)
			spec.Mirrors = []string{mirror.URL + "/model"}
			m, err := d.LoadSpec(spec)
			if err != nil {
				t.Fatal(err)
			}
			if firstHits.Load() != 1 || mirrorHits.Load() != 1 {
				t.Errorf("%d requests to the first address and %d to the mirror, want 1 and 1", firstHits.Load(), mirrorHits.Load())
			}
			if progress != int64(len(onnx)) || len(m.Layers()) == 0 {
				t.Errorf("progress ended at %d of %d bytes; %d layers", progress, len(onnx), len(m.Layers()))
			}
			if files := cacheFiles(t, d.CacheDir); len(files) != 1 {
				t.Errorf("cache holds %v, want the model alone", files)
			}
		})
	}

	t.Run("first address answers", func(t *testing.T) {
		srv, hits := server(t, onnx, http.StatusOK, false)
		mirror, mirrorHits := server(t, onnx, http.StatusOK, false)
		spec := tinySpec(t, srv.URL, onnx, false)
		spec.Mirrors = []string{mirror.URL + "/model"}
		if _, err := (pretrained.Downloader{CacheDir: t.TempDir()}).LoadSpec(spec); err != nil {
			t.Fatal(err)
		}
		if hits.Load() != 1 || mirrorHits.Load() != 0 {
			t.Errorf("%d and %d requests, want 1 and none to the mirror", hits.Load(), mirrorHits.Load())
		}
	})

	t.Run("every address fails", func(t *testing.T) {
		down, _ := server(t, onnx, http.StatusServiceUnavailable, false)
		wrong, _ := server(t, sameLength, http.StatusOK, false)
		d := pretrained.Downloader{CacheDir: t.TempDir()}
		spec := tinySpec(t, down.URL, onnx, false)
		spec.Mirrors = []string{wrong.URL + "/model"}
		_, err := d.LoadSpec(spec)
		if err == nil {
			t.Fatal("no error")
		}
		cached, _ := d.Path(spec)
		for _, want := range []string{spec.URL + ": server answered 503", spec.Mirrors[0] + ": SHA-256", "does not match", cached} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
		if files := cacheFiles(t, d.CacheDir); len(files) != 0 {
			t.Errorf("the failed downloads left %v in the cache", files)
		}
	})
}

// A server that accepts the connection and never answers, or stops halfway
// through the body, is given up on after StallTimeout without data, not a
// dialer's or a total timeout later, and with a message that says so. The
// mirror is not tried: on a network that drops packets it would stall too.
func TestPretrainedDownloadGivesUpWhenNothingArrives(t *testing.T) {
	onnx, err := os.ReadFile(testutil.Testdata("tinycnn", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	// Accepts connections (the kernel does) and never reads or answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	stop := make(chan struct{})
	halfway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(onnx)))
		w.Write(onnx[:1000])
		w.(http.Flusher).Flush()
		select { // The connection stays open, silent.
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(halfway.Close)
	t.Cleanup(func() { close(stop) }) // Runs first: frees the handler for Close.
	for _, c := range []struct{ name, url, want string }{
		{"no answer", "http://" + silent.Addr().String() + "/model", "the server sent nothing for 200ms, so the download stopped"},
		{"stops mid-body", halfway.URL + "/model", "the server sent nothing for 200ms (after 1000 bytes), so the download stopped"},
	} {
		t.Run(c.name, func(t *testing.T) {
			mirror, mirrorHits := server(t, onnx, http.StatusOK, false)
			d := pretrained.Downloader{CacheDir: t.TempDir(), StallTimeout: 200 * time.Millisecond}
			spec := tinySpec(t, c.url, onnx, false)
			spec.URL = c.url
			spec.Mirrors = []string{mirror.URL + "/model"}
			start := time.Now()
			_, err := d.Fetch(spec)
			if elapsed := time.Since(start); elapsed > 5*time.Second {
				t.Errorf("gave up after %v, want about 200ms", elapsed)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "$HTTPS_PROXY") {
				t.Fatalf("err = %v, want %q and what to check", err, c.want)
			}
			if strings.Contains(err.Error(), "deadline exceeded") || strings.Contains(err.Error(), "context canceled") {
				t.Errorf("message shows the context's error: %v", err)
			}
			if mirrorHits.Load() != 0 {
				t.Errorf("the mirror was tried after a stall")
			}
			if files := cacheFiles(t, d.CacheDir); len(files) != 0 {
				t.Errorf("the stalled download left %v in the cache", files)
			}
		})
	}
}

// The stall timeout is not a total one: a body that trickles in for longer
// than it, never pausing as long, downloads.
func TestPretrainedSlowDownloadIsNotAStall(t *testing.T) {
	onnx, err := os.ReadFile(testutil.Testdata("tinycnn", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	const pieces = 10
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(onnx)))
		for i := range pieces {
			w.Write(onnx[i*len(onnx)/pieces : (i+1)*len(onnx)/pieces])
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	}))
	t.Cleanup(srv.Close)
	d := pretrained.Downloader{CacheDir: t.TempDir(), StallTimeout: 200 * time.Millisecond}
	start := time.Now()
	if _, err := d.Fetch(tinySpec(t, srv.URL, onnx, false)); err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed < 400*time.Millisecond {
		t.Errorf("took %v; the test needs a download longer than the stall timeout", elapsed)
	}
}

// The default cache lives in the user's cache folder, which may be created,
// but not the home folder it belongs in.
func TestPretrainedCacheDoesNotCreateHome(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("the user's cache folder does not follow $HOME here")
	}
	home := filepath.Join(t.TempDir(), "no-such-home")
	t.Setenv("HOME", home)
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv(pretrained.CacheEnv, "")
	onnx := []byte("unused")
	_, err := pretrained.Downloader{}.Fetch(tinySpec(t, "http://127.0.0.1:1", onnx, false))
	if err == nil || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(err.Error(), "$"+pretrained.CacheEnv) {
		t.Errorf("err = %v, want the missing folder named and $%s suggested", err, pretrained.CacheEnv)
	}
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the download created $HOME %s (%v)", home, err)
	}
	// With a home folder, its cache folder is made as needed.
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := (pretrained.Downloader{}).Path(tinySpec(t, "http://127.0.0.1:1", onnx, false)); err != nil {
		t.Errorf("with $HOME present: %v", err)
	}
}
