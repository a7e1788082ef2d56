// Package pretrained knows the well-known ImageNet CNNs convlens can
// download (their address, size, SHA-256, preprocessing and labels) and
// fetches them once into a local cache: atomically, verified against the
// hash before anything is parsed, with progress reported to the caller. It
// reads and writes only its cache directory ($CONVLENS_CACHE, or the user's
// cache folder) and the network address of the model asked for.
package pretrained

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	_ "embed" // The models.ImageNet class names.
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/convlens/convlens/models"
)

// Spec describes a well-known pretrained CNN that convlens can
// download: where from, what it must hash to, and how to feed it.
type Spec struct {
	Name string
	// URL of the models.ONNX file, or of a .tar.gz archive holding one (Archive).
	URL     string
	Archive bool
	// SHA256 and Size of what URL serves.
	SHA256 string
	Size   int64
	// Normalization of its input ([models.ImageNet] for all the models listed here).
	Normalization models.Normalization
	// Labels name its classes.
	Labels []string
}

//go:embed imagenet_labels.txt
var imagenetLabels string

// ImageNetLabels are the 1000 models.ImageNet class names, by logit index (as
// torchvision lists them).
func ImageNetLabels() []string { return strings.Split(strings.TrimSpace(imagenetLabels), "\n") }

// pretrained lists the models [Pretrained] knows, from the models.ONNX model zoo;
// the checksums are those of the zoo's Git LFS objects.
var catalog = map[string]Spec{
	"vgg16": {
		Name: "vgg16", Archive: true, Size: 512679010,
		URL:    "https://github.com/onnx/models/raw/main/validated/vision/classification/vgg/model/vgg16-7.tar.gz",
		SHA256: "586413f9108e2316ebf80c3aa484d55f995d693b153e4c90742750519a9e27be",
	},
	"resnet50": {
		Name: "resnet50", Archive: true, Size: 95435189,
		URL:    "https://github.com/onnx/models/raw/main/validated/vision/classification/resnet/model/resnet50-v1-7.tar.gz",
		SHA256: "898a9183256e884ae06fb1c11869386eccd38393ab41d9339909e974519a9feb",
	},
	"resnet18": {
		Name: "resnet18", Size: 46806737,
		URL:    "https://github.com/onnx/models/raw/main/validated/vision/classification/resnet/model/resnet18-v2-7.onnx",
		SHA256: "3b4d048057854022232aa20bf68262e31718ab7119a17f920b8a2dc1433f824b",
	},
}

// Names lists the models [Pretrained] can download.
func Names() []string { return slices.Sorted(maps.Keys(catalog)) }

// Lookup returns the spec of a model [Pretrained] knows.
func Lookup(name string) (Spec, bool) {
	s, ok := catalog[name]
	if ok {
		s.Normalization, s.Labels = models.ImageNet, ImageNetLabels()
	}
	return s, ok
}

// Pretrained returns a well-known models.ImageNet CNN (see [Names]),
// downloading it into the cache on first use; see [Downloader].
func Load(name string) (*models.ONNX, error) { return Downloader{}.Load(name) }

// CacheEnv names the environment variable that overrides the cache directory.
const CacheEnv = "CONVLENS_CACHE"

// Downloader fetches pretrained models into a cache and verifies them.
// Its zero value uses $CONVLENS_CACHE (default: convlens/ under the user's
// cache directory), reports no progress and uses a client that gives up on
// an unresponsive server instead of waiting forever.
type Downloader struct {
	// CacheDir overrides the cache directory.
	CacheDir string
	// Progress, if set, is called as bytes arrive; total is −1 when unknown.
	Progress func(name string, done, total int64)
	// Client overrides the HTTP client.
	Client *http.Client
}

// Load fetches the named model if needed and loads it.
func (d Downloader) Load(name string) (*models.ONNX, error) {
	spec, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("no pretrained model %q; known: %s", name, strings.Join(Names(), ", "))
	}
	return d.LoadSpec(spec)
}

// LoadSpec fetches the model spec describes if needed, verifies it and loads it.
func (d Downloader) LoadSpec(spec Spec) (*models.ONNX, error) {
	path, err := d.Fetch(spec)
	if err != nil {
		return nil, err
	}
	contents, err := readVerified(path, spec.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.Name, err)
	}
	if spec.Archive {
		if contents, err = onnxFromArchive(contents); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", spec.Name, path, err)
		}
	}
	m, err := models.ParseONNX(filepath.Join(filepath.Dir(path), spec.Name+".onnx"), contents)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", spec.Name, err)
	}
	m.SetNormalization(spec.Normalization)
	m.SetLabels(spec.Labels)
	return m, nil
}

// Path is where spec's file lives in the cache once fetched.
func (d Downloader) Path(spec Spec) (string, error) {
	dir := d.CacheDir
	if dir == "" {
		dir = os.Getenv(CacheEnv)
	}
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("no cache directory: set $%s: %w", CacheEnv, err)
		}
		dir = filepath.Join(base, "convlens")
	}
	return filepath.Join(dir, spec.Name+"-"+spec.SHA256[:12]+filepath.Ext(strings.TrimSuffix(spec.URL, ".gz"))+gzExt(spec.URL)), nil
}

func gzExt(url string) string {
	if strings.HasSuffix(url, ".gz") {
		return ".gz"
	}
	return ""
}

// Fetch makes sure spec's file is in the cache and returns its path. The
// transfer goes to a temporary file that is renamed into place only once its
// SHA-256 matches, so an interrupted or corrupt download leaves nothing a
// later run could take for the real file.
func (d Downloader) Fetch(spec Spec) (string, error) {
	path, err := d.Path(spec)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("creating the cache: %w", err)
	}
	if err := d.download(spec, path); err != nil {
		return "", fmt.Errorf("downloading %s from %s: %w; if this machine is offline, fetch that URL by hand and save it as %s", spec.Name, spec.URL, err, path)
	}
	return path, nil
}

func (d Downloader) download(spec Spec, path string) error {
	client := d.Client
	if client == nil {
		client = defaultClient
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, spec.URL, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("server answered %s", resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // A no-op once renamed.
	h := sha256.New()
	var body io.Reader = resp.Body
	if d.Progress != nil {
		body = &progressReader{r: body, name: spec.Name, total: resp.ContentLength, report: d.Progress}
	}
	n, err := io.Copy(io.MultiWriter(tmp, h), body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("transfer broke off after %d bytes: %w", n, err)
	}
	if spec.Size > 0 && n != spec.Size {
		return fmt.Errorf("got %d bytes, want %d", n, spec.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != spec.SHA256 {
		return fmt.Errorf("SHA-256 %s does not match the expected %s", got, spec.SHA256)
	}
	return os.Rename(tmp.Name(), path)
}

// defaultClient fails on a server that does not answer instead of hanging:
// connecting, the TLS handshake and the response headers are bounded; the
// body may take as long as it needs.
var defaultClient = &http.Client{Transport: &http.Transport{
	Proxy:                 http.ProxyFromEnvironment,
	DialContext:           (&net.Dialer{Timeout: 15 * time.Second}).DialContext,
	TLSHandshakeTimeout:   15 * time.Second,
	ResponseHeaderTimeout: 30 * time.Second,
}}

type progressReader struct {
	r      io.Reader
	name   string
	done   int64
	total  int64
	report func(name string, done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	p.report(p.name, p.done, p.total)
	return n, err
}

// readVerified reads a cached file and checks its SHA-256 again, so a file
// damaged in the cache is never used.
func readVerified(path, sha string) ([]byte, error) {
	contents, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(contents)
	if got := hex.EncodeToString(sum[:]); got != sha {
		return nil, fmt.Errorf("cached file %s is damaged (SHA-256 %s, want %s): delete it to download it again", path, got, sha)
	}
	return contents, nil
}

// onnxFromArchive returns the first .onnx file of a .tar.gz archive.
func onnxFromArchive(archive []byte) ([]byte, error) {
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		return nil, fmt.Errorf("not a .tar.gz archive: %w", err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the archive holds no .onnx file")
		}
		if err != nil {
			return nil, fmt.Errorf("reading the archive: %w", err)
		}
		if h.Typeflag == tar.TypeReg && strings.HasSuffix(h.Name, ".onnx") {
			return io.ReadAll(tr)
		}
	}
}
