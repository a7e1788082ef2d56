package lesiondata

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"testing"
)

func TestDeterministic(t *testing.T) {
	for _, cfg := range []Config{Standard(), Shortcut(), {Clean: true}} {
		for i := range 6 {
			set := Set{Seed: 42, Config: cfg}
			a, b := set.Sample(i), set.Sample(i)
			if !bytes.Equal(a.Image.Pix, b.Image.Pix) || !slices.Equal(a.Mask, b.Mask) || !slices.Equal(a.Ruler, b.Ruler) {
				t.Fatalf("sample %d of %+v differs between two runs", i, cfg)
			}
			if a.Class != Class(i%2) || a.Seed != set.SampleSeed(i) {
				t.Errorf("sample %d: class %v seed %x", i, a.Class, a.Seed)
			}
		}
	}
	if bytes.Equal(Generate(1, Benign, Standard()).Image.Pix, Generate(2, Benign, Standard()).Image.Pix) {
		t.Error("two seeds gave the same image")
	}
}

// TestGolden pins the bytes of a few images, so that a change of the
// generator (which would change the data the embedded models were trained
// and evaluated on) is noticed. Float results are exact on amd64; other
// architectures may fuse multiply-adds, so the hashes are checked there only.
func TestGolden(t *testing.T) {
	h := sha256.New()
	set := HeldOut(Standard())
	for i := range 4 {
		s := set.Sample(i)
		h.Write(s.Image.Pix)
		for _, m := range [][]bool{s.Mask, s.Ruler} {
			for _, v := range m {
				if v {
					h.Write([]byte{1})
				} else {
					h.Write([]byte{0})
				}
			}
		}
	}
	got := fmt.Sprintf("%x", h.Sum(nil))
	const want = "42ac8983804a9fddb32c3ee4967797b366d24d0d16c3516f44b1cbc8d9b9ee7f"
	if runtime.GOARCH != "amd64" {
		t.Skipf("hash %s not compared on %s", got, runtime.GOARCH)
	}
	if got != want {
		t.Errorf("the held-out images changed: hash %s, want %s", got, want)
	}
}

// TestDistractorsIgnoreClass draws images without their lesion: with equal
// ruler probabilities, both classes must give the same picture.
func TestDistractorsIgnoreClass(t *testing.T) {
	cfg := Standard()
	cfg.noLesion = true
	for seed := range uint64(20) {
		a, b := Generate(seed, Benign, cfg), Generate(seed, Suspicious, cfg)
		if !bytes.Equal(a.Image.Pix, b.Image.Pix) || !slices.Equal(a.Ruler, b.Ruler) {
			t.Fatalf("seed %d: the background depends on the class", seed)
		}
	}
}

// TestMaskCoversLesion compares each image with the same image drawn
// without its lesion: the pixels the lesion changed must lie in the mask
// (or within its blurred border, 3 pixels), and nearly all mask pixels must
// have changed.
func TestMaskCoversLesion(t *testing.T) {
	for _, cfg := range []Config{{Clean: true}, {Clean: true, RulerBenign: 1, RulerSuspicious: 1}} {
		without := cfg
		without.noLesion = true
		for i := range 40 {
			set := Set{Seed: 7, Config: cfg}
			s := set.Sample(i)
			bg := Set{Seed: 7, Config: without}.Sample(i)
			near := dilate(s.Mask, 3)
			changed, inMask, outside := 0, 0, 0
			for p := range Size * Size {
				d := 0
				for c := range 3 {
					d = max(d, absDiff(s.Image.Pix[4*p+c], bg.Image.Pix[4*p+c]))
				}
				if d > 8 {
					changed++
					if !near[p] {
						outside++
					}
				}
				if s.Mask[p] {
					inMask++
					if d <= 8 && (s.Ruler == nil || !s.Ruler[p]) {
						t.Logf("sample %d: mask pixel %d unchanged", i, p)
					}
				}
			}
			if outside > 0 {
				t.Errorf("sample %d (%v): %d changed pixels outside the mask", i, s.Class, outside)
			}
			if inMask < 1000 {
				t.Errorf("sample %d: mask of %d pixels", i, inMask)
			}
			if float64(changed) < 0.97*float64(inMask) {
				t.Errorf("sample %d: %d pixels changed for a mask of %d", i, changed, inMask)
			}
		}
	}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

func dilate(m []bool, r int) []bool {
	out := make([]bool, len(m))
	for y := range Size {
		for x := range Size {
			if !m[y*Size+x] {
				continue
			}
			for dy := -r; dy <= r; dy++ {
				for dx := -r; dx <= r; dx++ {
					if xx, yy := x+dx, y+dy; xx >= 0 && yy >= 0 && xx < Size && yy < Size {
						out[yy*Size+xx] = true
					}
				}
			}
		}
	}
	return out
}

// TestABCD measures, from the pixels alone, what the classes claim:
// suspicious lesions are more asymmetric, more irregular at the border and
// more varied in colour than benign ones. The lesion is segmented by its
// colour distance from the skin around the image's edge, not read from the
// mask; the segmentation is checked against the mask only to know that the
// measures measure the lesion.
func TestABCD(t *testing.T) {
	const n = 60
	set := Set{Seed: 11, Config: Config{Clean: true}}
	var asym, irreg, colour [2][]float64
	for i := range 2 * n {
		s := set.Sample(i)
		seg := segment(s)
		if iou := jaccard(seg, s.Mask); iou < 0.85 {
			t.Errorf("sample %d (%v): segmentation overlaps the mask by IoU %.2f", i, s.Class, iou)
		}
		asym[s.Class] = append(asym[s.Class], asymmetry(seg))
		irreg[s.Class] = append(irreg[s.Class], irregularity(seg))
		colour[s.Class] = append(colour[s.Class], colourSpread(s, seg))
	}
	for _, m := range []struct {
		name      string
		v         [2][]float64
		maxBenign float64
	}{
		{"asymmetry", asym, 0.08},
		{"border irregularity", irreg, 1.25},
		{"colour spread", colour, 0.05},
	} {
		b, s := m.v[Benign], m.v[Suspicious]
		t.Logf("%s: benign median %.3f max %.3f; suspicious min %.3f median %.3f",
			m.name, median(b), slices.Max(b), slices.Min(s), median(s))
		if median(b) > m.maxBenign {
			t.Errorf("%s: benign median %.3f > %.3f", m.name, median(b), m.maxBenign)
		}
		// Separable: a threshold between the classes misplaces at most 5%.
		if e := bestSplitError(b, s); e > 0.05 {
			t.Errorf("%s: the best threshold misclassifies %.0f%%", m.name, 100*e)
		}
	}
}

// segment marks the pixels whose colour is far from the skin's, estimated as
// the median colour of a 6-pixel frame around the image, and keeps the
// connected region that contains the image centre's nearest marked pixel.
func segment(s *Sample) []bool {
	var frame [3][]float64
	for y := range Size {
		for x := range Size {
			if x < 6 || y < 6 || x >= Size-6 || y >= Size-6 {
				for c := range 3 {
					frame[c] = append(frame[c], float64(s.Image.Pix[4*(y*Size+x)+c])/255)
				}
			}
		}
	}
	skin := [3]float64{median(frame[0]), median(frame[1]), median(frame[2])}
	far := make([]bool, Size*Size)
	for p := range far {
		d := 0.0
		for c := range 3 {
			d += math.Abs(float64(s.Image.Pix[4*p+c])/255 - skin[c])
		}
		far[p] = d > 0.2
	}
	// Flood fill from the marked pixel nearest the centre.
	start, best := -1, math.Inf(1)
	for p, f := range far {
		if d := math.Hypot(float64(p%Size)-Size/2, float64(p/Size)-Size/2); f && d < best {
			start, best = p, d
		}
	}
	seg := make([]bool, Size*Size)
	if start < 0 {
		return seg
	}
	stack := []int{start}
	seg[start] = true
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		x, y := p%Size, p/Size
		for _, q := range [][2]int{{x + 1, y}, {x - 1, y}, {x, y + 1}, {x, y - 1}} {
			if q[0] < 0 || q[1] < 0 || q[0] >= Size || q[1] >= Size {
				continue
			}
			if i := q[1]*Size + q[0]; far[i] && !seg[i] {
				seg[i] = true
				stack = append(stack, i)
			}
		}
	}
	// Fill holes: pixels not reachable from the border through unmarked pixels.
	outside := make([]bool, Size*Size)
	stack = stack[:0]
	for p := range Size * Size {
		x, y := p%Size, p/Size
		if (x == 0 || y == 0 || x == Size-1 || y == Size-1) && !seg[p] {
			outside[p] = true
			stack = append(stack, p)
		}
	}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		x, y := p%Size, p/Size
		for _, q := range [][2]int{{x + 1, y}, {x - 1, y}, {x, y + 1}, {x, y - 1}} {
			if q[0] < 0 || q[1] < 0 || q[0] >= Size || q[1] >= Size {
				continue
			}
			if i := q[1]*Size + q[0]; !seg[i] && !outside[i] {
				outside[i] = true
				stack = append(stack, i)
			}
		}
	}
	for p := range seg {
		seg[p] = !outside[p]
	}
	return seg
}

func jaccard(a, b []bool) float64 {
	inter, union := 0, 0
	for i := range a {
		if a[i] && b[i] {
			inter++
		}
		if a[i] || b[i] {
			union++
		}
	}
	return float64(inter) / float64(union)
}

// asymmetry is the ABCD asymmetry index of a region: reflect it across each
// of its two principal axes (through its centroid); the share of the region
// not covered by its reflection, averaged over the two axes.
func asymmetry(seg []bool) float64 {
	var n, mx, my float64
	for p, in := range seg {
		if in {
			n++
			mx += float64(p % Size)
			my += float64(p / Size)
		}
	}
	mx, my = mx/n, my/n
	var sxx, syy, sxy float64
	for p, in := range seg {
		if in {
			dx, dy := float64(p%Size)-mx, float64(p/Size)-my
			sxx += dx * dx
			syy += dy * dy
			sxy += dx * dy
		}
	}
	theta := 0.5 * math.Atan2(2*sxy, sxx-syy) // major axis
	total := 0.0
	for _, a := range []float64{theta, theta + math.Pi/2} {
		ux, uy := math.Cos(a), math.Sin(a)
		miss := 0.0
		for p, in := range seg {
			if !in {
				continue
			}
			dx, dy := float64(p%Size)-mx, float64(p/Size)-my
			along := dx*ux + dy*uy
			// Reflect across the axis of direction (ux, uy).
			rx, ry := 2*along*ux-dx+mx, 2*along*uy-dy+my
			xi, yi := int(math.Round(rx)), int(math.Round(ry))
			if xi < 0 || yi < 0 || xi >= Size || yi >= Size || !seg[yi*Size+xi] {
				miss++
			}
		}
		total += miss / n
	}
	return total / 2
}

// irregularity is the squared perimeter over 4π times the area: 1 for a
// disc, larger for ragged outlines. The perimeter counts pixel edges
// between the region and the rest, scaled by π/4 (the mean ratio of a
// staircase to the smooth curve it follows).
func irregularity(seg []bool) float64 {
	area, edges := 0.0, 0.0
	for p, in := range seg {
		if !in {
			continue
		}
		area++
		x, y := p%Size, p/Size
		for _, q := range [][2]int{{x + 1, y}, {x - 1, y}, {x, y + 1}, {x, y - 1}} {
			if q[0] < 0 || q[1] < 0 || q[0] >= Size || q[1] >= Size || !seg[q[1]*Size+q[0]] {
				edges++
			}
		}
	}
	per := edges * math.Pi / 4
	return per * per / (4 * math.Pi * area)
}

// colourSpread is the mean over RGB of the standard deviation of the
// region's pixels (values in [0,1]), leaving out a 2-pixel rim.
func colourSpread(s *Sample, seg []bool) float64 {
	inner := erode(seg, 2)
	total := 0.0
	for c := range 3 {
		var n, sum, sq float64
		for p, in := range inner {
			if in {
				v := float64(s.Image.Pix[4*p+c]) / 255
				n++
				sum += v
				sq += v * v
			}
		}
		m := sum / n
		total += math.Sqrt(max(0, sq/n-m*m))
	}
	return total / 3
}

func erode(m []bool, r int) []bool {
	inv := make([]bool, len(m))
	for i, v := range m {
		inv[i] = !v
	}
	d := dilate(inv, r)
	for i, v := range d {
		d[i] = !v
	}
	return d
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	return s[len(s)/2]
}

// bestSplitError is the smallest error rate of a threshold that calls
// values above it the second group.
func bestSplitError(a, b []float64) float64 {
	all := append(slices.Clone(a), b...)
	best := 1.0
	for _, th := range all {
		wrong := 0
		for _, v := range a {
			if v > th {
				wrong++
			}
		}
		for _, v := range b {
			if v <= th {
				wrong++
			}
		}
		best = min(best, float64(wrong)/float64(len(all)))
	}
	return best
}

// TestRuler checks that rulers appear where asked, and only there, that
// they are drawn (dark tick marks inside the band), that the band keeps off
// the lesion, and that their rate follows the configuration.
func TestRuler(t *testing.T) {
	set := Set{Seed: 3, Config: Config{RulerBenign: 1, RulerSuspicious: 0}}
	for i := range 20 {
		s := set.Sample(i)
		if s.HasRuler() != (s.Class == Benign) {
			t.Fatalf("sample %d (%v): ruler %v", i, s.Class, s.HasRuler())
		}
		if !s.HasRuler() {
			continue
		}
		band, dark, overlap := 0, 0, 0
		for p, in := range s.Ruler {
			if !in {
				continue
			}
			band++
			px := s.Image.Pix[4*p : 4*p+3]
			if int(px[0])+int(px[1])+int(px[2]) < 3*70 {
				dark++
			}
			if s.Mask[p] {
				overlap++
			}
		}
		if band < 500 || dark < 100 {
			t.Errorf("sample %d: ruler band of %d pixels, %d dark", i, band, dark)
		}
		if overlap > band/20 {
			t.Errorf("sample %d: the ruler covers %d lesion pixels", i, overlap)
		}
	}
	for _, c := range []struct {
		cfg  Config
		want [2]float64
	}{{Standard(), [2]float64{0.3, 0.3}}, {Shortcut(), [2]float64{0, 1}}, {Uncorrelated(), [2]float64{0.5, 0.5}}} {
		var with [2]int
		const n = 200
		for i := range n {
			s := Set{Seed: 9, Config: c.cfg}.Sample(i)
			if s.HasRuler() {
				with[s.Class]++
			}
		}
		for k := range 2 {
			if got := float64(with[k]) / (n / 2); math.Abs(got-c.want[k]) > 0.1 {
				t.Errorf("%+v: %v images with a ruler: %.2f, want %.2f", c.cfg, Class(k), got, c.want[k])
			}
		}
	}
}

func TestFloat32(t *testing.T) {
	s := Generate(5, Suspicious, Standard())
	dst := make([]float32, Size*Size*3)
	s.Float32(dst)
	for _, p := range []int{0, 1000, Size*Size - 1} {
		for c := range 3 {
			if want := float32(s.Image.Pix[4*p+c]) / 255; dst[3*p+c] != want {
				t.Fatalf("pixel %d channel %d: %v, want %v", p, c, dst[3*p+c], want)
			}
		}
	}
	if m := s.MaskImage(); m.Bounds().Dx() != Size || (m.Pix[Size/2*Size+Size/2] == 255) != s.Mask[Size/2*Size+Size/2] {
		t.Error("MaskImage")
	}
}

func BenchmarkGenerate(b *testing.B) {
	set := Set{Seed: 5, Config: Standard()}
	for i := 0; b.Loop(); i++ {
		set.Sample(i)
	}
}

// TestAmbiguous: in the shortcut configuration a quarter of the lesions
// look like the other class; elsewhere every lesion looks like its label.
func TestAmbiguous(t *testing.T) {
	const n = 120
	other := 0
	for i := range n {
		s := HeldOut(Shortcut()).Sample(i)
		if s.Looks != s.Class {
			other++
		}
		if u := HeldOut(Uncorrelated()).Sample(i); u.Looks != u.Class || u.Class != s.Class {
			t.Fatalf("sample %d: uncorrelated image of class %v looks %v", i, u.Class, u.Looks)
		}
	}
	if r := float64(other) / n; math.Abs(r-0.25) > 0.1 {
		t.Errorf("%.2f of the shortcut lesions look like the other class, want 0.25", r)
	}
	if s := Generate(1, NoLesion, Config{Ambiguous: 1}); s.Looks != NoLesion || slices.Contains(s.Mask, true) {
		t.Errorf("an image without a lesion looks %v, mask %v", s.Looks, slices.Contains(s.Mask, true))
	}
	if (Set{Config: Config{NoLesionImages: true}}).Class(5) != NoLesion || NoLesion.String() != "no lesion" {
		t.Error("every third image of a set with NoLesionImages has no lesion")
	}
}
