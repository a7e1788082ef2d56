// Package pretrained knows the well-known ImageNet CNNs convlens can
// download from the ONNX model zoo (their addresses, size, SHA-256,
// preprocessing and labels) and fetches them once into a local cache:
// atomically, verified against the hash before anything is parsed, trying
// each published address of a file in turn, with progress reported to the
// caller. It reads and writes only its cache directory ($CONVLENS_CACHE, or
// the user's cache folder) and the network addresses of the model asked for.
//
// The catalogue names each file as the zoo does ("vgg16-12",
// "resnet50-v1-7"); the short names "vgg16", "resnet50" and "resnet18" stand
// for the newest opset of each network the zoo publishes (see [Lookup]).
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
	// Name is the model's catalogue name ("vgg16-12"); the cached file and the
	// loaded model are named after it.
	Name string
	// URL of the models.ONNX file, or of a .tar.gz archive holding one (Archive).
	URL string
	// Mirrors are other addresses of the very same file (same SHA256 and
	// Size), tried in order when URL, or the mirror before, fails.
	Mirrors []string
	Archive bool
	// SHA256 and Size of what URL and Mirrors serve.
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

// Where the ONNX model zoo's files are published. GitHub serves them from
// Git LFS: github.com/…/raw/ redirects to media.githubusercontent.com, which
// is also listed on its own in case the redirect is what fails. The
// onnxmodelzoo organisation on Hugging Face holds the same bare .onnx files
// (not the .tar.gz archives), one repository per file.
const (
	zooGitHub = "https://github.com/onnx/models/raw/main/validated/vision/classification/"
	zooLFS    = "https://media.githubusercontent.com/media/onnx/models/main/validated/vision/classification/"
	zooHF     = "https://huggingface.co/onnxmodelzoo/"
)

// zooFile is the Spec of the zoo file dir/file, for example
// "vgg/model/vgg16-12.onnx", with the SHA-256 and size of its Git LFS pointer.
func zooFile(dir, file string, size int64, sha string) Spec {
	s := Spec{
		Name: strings.TrimSuffix(strings.TrimSuffix(file, ".onnx"), ".tar.gz"), Archive: strings.HasSuffix(file, ".tar.gz"),
		URL: zooGitHub + dir + file, Mirrors: []string{zooLFS + dir + file}, SHA256: sha, Size: size,
	}
	if !s.Archive {
		s.Mirrors = append(s.Mirrors, zooHF+s.Name+"/resolve/main/"+file)
	}
	return s
}

// catalog lists the models [Load] knows, from the ONNX model zoo
// (github.com/onnx/models); each SHA-256 and size is the oid and size of the
// file's Git LFS pointer under validated/vision/classification/.
var catalog = func() map[string]Spec {
	c := map[string]Spec{}
	for _, s := range []Spec{
		// Opset 12, the newest the zoo has of these networks.
		zooFile("vgg/model/", "vgg16-12.onnx", 553437752, "722c42f53ca03a5480296bf8f9c85a151de3eed9ec982d7d2302ff6e2900c67b"),
		zooFile("resnet/model/", "resnet50-v1-12.onnx", 102576593, "3f03fdef724b22947eed826f1eef1dc5c34151bb4c37d634f1db89dfa2dd1526"),
		// Opset 7, the MXNet exports; the zoo has ResNet-18 at no later opset.
		zooFile("vgg/model/", "vgg16-7.tar.gz", 512679010, "586413f9108e2316ebf80c3aa484d55f995d693b153e4c90742750519a9e27be"),
		zooFile("resnet/model/", "resnet50-v1-7.tar.gz", 95435189, "898a9183256e884ae06fb1c11869386eccd38393ab41d9339909e974519a9feb"),
		zooFile("resnet/model/", "resnet18-v2-7.onnx", 46806737, "3b4d048057854022232aa20bf68262e31718ab7119a17f920b8a2dc1433f824b"),
	} {
		c[s.Name] = s
	}
	return c
}()

// aliases are the short names, each for the newest opset of its network.
var aliases = map[string]string{
	"vgg16":    "vgg16-12",
	"resnet50": "resnet50-v1-12",
	"resnet18": "resnet18-v2-7",
}

// Names lists the models [Load] can download: the catalogue's names and
// the short aliases.
func Names() []string {
	names := append(slices.Collect(maps.Keys(catalog)), slices.Collect(maps.Keys(aliases))...)
	slices.Sort(names)
	return names
}

// Lookup returns the spec of a model [Load] knows. A short name returns the
// spec of the file it stands for, named as that file ("vgg16" gives the
// spec named "vgg16-12"), so that both names share one cached copy.
func Lookup(name string) (Spec, bool) {
	if full, ok := aliases[name]; ok {
		name = full
	}
	s, ok := catalog[name]
	if ok {
		s.Mirrors = slices.Clone(s.Mirrors)
		s.Normalization, s.Labels = models.ImageNet, ImageNetLabels()
	}
	return s, ok
}

// Load returns a well-known models.ImageNet CNN (see [Names]),
// downloading it into the cache on first use; see [Downloader].
func Load(name string) (*models.ONNX, error) { return Downloader{}.Load(name) }

// CacheEnv names the environment variable that overrides the cache directory.
const CacheEnv = "CONVLENS_CACHE"

// DefaultStallTimeout is how long a download waits for data before it gives
// up; see [Downloader.StallTimeout].
const DefaultStallTimeout = 10 * time.Second

// Downloader fetches pretrained models into a cache and verifies them.
// Its zero value uses $CONVLENS_CACHE (default: convlens/ under the user's
// cache directory), reports no progress, uses [http.DefaultClient] and gives
// up after [DefaultStallTimeout] without data.
type Downloader struct {
	// CacheDir overrides the cache directory.
	CacheDir string
	// Progress, if set, is called as bytes arrive; total is −1 when unknown.
	// When an address fails and the next is tried, done starts again from 0.
	Progress func(name string, done, total int64)
	// Client overrides the HTTP client.
	Client *http.Client
	// StallTimeout is how long a download may go without receiving anything
	// (an answer or a byte of the body) before it gives up; each byte
	// restarts the clock, so a large file may take as long as it needs.
	// After a stall no other address is tried: on a network that drops
	// packets each would wait as long. 0 means [DefaultStallTimeout].
	StallTimeout time.Duration
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
	if len(spec.SHA256) < 12 {
		return "", fmt.Errorf("%s: no SHA-256 to verify a download against", spec.Name)
	}
	dir := d.CacheDir
	if dir == "" {
		dir = os.Getenv(CacheEnv)
	}
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("no cache directory: set $%s: %w", CacheEnv, err)
		}
		// The user's cache folder may be made, but not the home folder it
		// belongs in: a missing one is a misconfigured account or service.
		if home := filepath.Dir(base); !isDir(home) {
			return "", fmt.Errorf("no cache directory: the user's cache folder %s would be inside %s, which does not exist (is $HOME right?); set $%s to a folder for downloaded models",
				base, home, CacheEnv)
		}
		dir = filepath.Join(base, "convlens")
	}
	return filepath.Join(dir, spec.Name+"-"+spec.SHA256[:12]+filepath.Ext(strings.TrimSuffix(spec.URL, ".gz"))+gzExt(spec.URL)), nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

func gzExt(url string) string {
	if strings.HasSuffix(url, ".gz") {
		return ".gz"
	}
	return ""
}

// Fetch makes sure spec's file is in the cache and returns its path. It tries
// URL, then each mirror in order, until one serves the file. Each transfer
// goes to a temporary file that is renamed into place only once its SHA-256
// matches, so an interrupted or corrupt download leaves nothing a later run
// could take for the real file. When every address fails, or one stalls
// (see [Downloader.StallTimeout]), the error says what each one did.
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
	urls := slices.DeleteFunc(append([]string{spec.URL}, spec.Mirrors...), func(u string) bool { return u == "" })
	if len(urls) == 0 {
		return "", fmt.Errorf("%s: no address to download it from", spec.Name)
	}
	stall := d.StallTimeout
	if stall <= 0 {
		stall = DefaultStallTimeout
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	watchdog := time.AfterFunc(stall, func() { cancel(fmt.Errorf("%w for %v", errStalled, stall)) })
	defer watchdog.Stop()
	alive := func() { watchdog.Reset(stall) }
	var failures []string
	for _, u := range urls {
		err := d.download(ctx, alive, spec, u, path)
		if err == nil {
			return path, nil
		}
		if errors.Is(err, errStalled) {
			failures = append(failures, fmt.Sprintf("from %s: %v, so the download stopped: the network is down, drops the traffic, or needs a proxy ($HTTPS_PROXY)", u, err))
			break
		}
		failures = append(failures, fmt.Sprintf("from %s: %v", u, err))
	}
	fetch := urls[0]
	if len(urls) > 1 {
		fetch = "one of " + strings.Join(urls, ", ")
	}
	return "", fmt.Errorf("downloading %s: %s; if this machine is offline, fetch %s by hand and save it as %s",
		spec.Name, strings.Join(failures, "; "), fetch, path)
}

// errStalled is the cause of a download cancelled for want of data.
var errStalled = errors.New("the server sent nothing")

// download fetches url into path; ctx is cancelled with errStalled when
// nothing arrives for a while, and alive, called as anything arrives,
// restarts that clock.
func (d Downloader) download(ctx context.Context, alive func(), spec Spec, url, path string) error {
	client := d.Client
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return stalled(ctx, err, 0)
	}
	defer resp.Body.Close()
	alive()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("server answered %s", resp.Status)
	}
	// A server announcing another length serves another file (an error page,
	// say): give up before transferring it.
	if spec.Size > 0 && resp.ContentLength >= 0 && resp.ContentLength != spec.Size {
		return fmt.Errorf("server announced %d bytes, want %d", resp.ContentLength, spec.Size)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".download-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // A no-op once renamed.
	h := sha256.New()
	var body io.Reader = &aliveReader{r: resp.Body, alive: alive}
	if spec.Size > 0 {
		body = io.LimitReader(body, spec.Size+1) // One byte past the size tells a longer file.
	}
	if d.Progress != nil {
		body = &progressReader{r: body, name: spec.Name, total: resp.ContentLength, report: d.Progress}
	}
	n, err := io.Copy(io.MultiWriter(tmp, h), body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return stalled(ctx, fmt.Errorf("transfer broke off after %d bytes: %w", n, err), n)
	}
	if spec.Size > 0 && n > spec.Size {
		return fmt.Errorf("got more than the %d bytes expected", spec.Size)
	}
	if spec.Size > 0 && n != spec.Size {
		return fmt.Errorf("got %d bytes, want %d", n, spec.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != spec.SHA256 {
		return fmt.Errorf("SHA-256 %s does not match the expected %s", got, spec.SHA256)
	}
	return os.Rename(tmp.Name(), path)
}

// stalled returns, in place of err, the stall that cancelled ctx, if one did,
// with the bytes received.
func stalled(ctx context.Context, err error, received int64) error {
	cause := context.Cause(ctx)
	switch {
	case !errors.Is(cause, errStalled):
		return err
	case received > 0:
		return fmt.Errorf("%w (after %d bytes)", cause, received)
	}
	return cause
}

// aliveReader calls alive whenever bytes arrive.
type aliveReader struct {
	r     io.Reader
	alive func()
}

func (a *aliveReader) Read(b []byte) (int, error) {
	n, err := a.r.Read(b)
	if n > 0 {
		a.alive()
	}
	return n, err
}

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

// onnxFromArchive returns the first .onnx file of a .tar.gz archive. The
// zoo's archives hold one folder with the model and its test_data_set_*
// folders of .pb tensors, which are skipped.
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
			contents, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("reading %s from the archive: %w", h.Name, err)
			}
			return contents, nil
		}
	}
}
