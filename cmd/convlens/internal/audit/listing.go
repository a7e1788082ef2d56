package audit

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Record is one image of an archive, as listed: what to read and where its
// ground truth lies.
type Record struct {
	// ID identifies the image (see Row.ID); Path is its file.
	ID, Path string
	// Label is the true class index, or -1 when none is given.
	Label int
	// Mask is the ground-truth mask's file ("" for none).
	Mask string
}

// Source says where an archive's images and masks are.
type Source struct {
	// Images is a folder, read recursively for PNG and JPEG files (an
	// image's id is its path relative to the folder, with forward
	// slashes), or a CSV file (a name ending in .csv) with a header line
	// and the columns id,path and optionally label and mask. Relative paths
	// in the CSV are relative to its folder; a label is a class index or
	// one of Labels.
	Images string
	// Masks is a folder of ground-truth masks at the images' relative paths
	// (as PNG: the image's extension replaced by .png); a mask column of
	// the CSV takes precedence.
	Masks string
	// Regions are named folders of artefact masks laid out as Masks.
	Regions []NamedDir
	// Labels are the model's class names, for CSV labels given by name.
	Labels []string
}

// NamedDir is one --regions NAME=DIR.
type NamedDir struct{ Name, Dir string }

// ParseRegions parses --regions NAME=DIR,...
func ParseRegions(items []string) ([]NamedDir, error) {
	var out []NamedDir
	for _, it := range items {
		name, dir, ok := strings.Cut(it, "=")
		name = strings.TrimSpace(name)
		switch {
		case !ok || name == "" || dir == "":
			return nil, fmt.Errorf("region %q: give NAME=DIR", it)
		case name == MaskRegion:
			return nil, fmt.Errorf("region name %q is the --masks ground truth's; choose another", name)
		case slices.ContainsFunc(out, func(d NamedDir) bool { return d.Name == name }):
			return nil, fmt.Errorf("region %q given twice", name)
		}
		out = append(out, NamedDir{name, dir})
	}
	return out, nil
}

// IsCSV reports whether --images names a CSV list rather than a folder.
func IsCSV(images string) bool { return strings.EqualFold(filepath.Ext(images), ".csv") }

// imageExt reports whether name is a PNG or JPEG file name.
func imageExt(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg":
		return true
	}
	return false
}

// errStop ends a listing early.
var errStop = errors.New("stop")

// Walk lists the archive's records in order (a folder: lexical order of
// the relative paths; a CSV: its order) and calls fn with each, streaming:
// nothing is held but the current record. fn returning an error stops it.
func (s Source) Walk(fn func(Record) error) error {
	if IsCSV(s.Images) {
		return s.walkCSV(fn)
	}
	fi, err := os.Stat(s.Images)
	if err != nil {
		return fmt.Errorf("--images: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("--images %s is neither a folder nor a .csv list", s.Images)
	}
	return filepath.WalkDir(s.Images, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("listing %s: %w", s.Images, err)
		}
		if d.IsDir() || !imageExt(d.Name()) {
			return nil
		}
		rel, err := filepath.Rel(s.Images, path)
		if err != nil {
			return err
		}
		id := filepath.ToSlash(rel)
		rec := Record{ID: id, Path: path, Label: -1}
		if s.Masks != "" {
			rec.Mask = maskPath(s.Masks, id)
		}
		return fn(rec)
	})
}

// maskPath is where a mask folder keeps the mask of image id.
func maskPath(dir, id string) string {
	return filepath.Join(dir, filepath.FromSlash(strings.TrimSuffix(id, filepath.Ext(id))+".png"))
}

// RegionPath is the mask file of region r for the image id.
func RegionPath(r NamedDir, id string) string { return maskPath(r.Dir, id) }

func (s Source) walkCSV(fn func(Record) error) error {
	f, err := os.Open(s.Images)
	if err != nil {
		return fmt.Errorf("--images: %w", err)
	}
	defer f.Close()
	base := filepath.Dir(s.Images)
	r := csv.NewReader(f)
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("%s: reading the header: %w", s.Images, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	idCol, okID := col["id"]
	pathCol, okPath := col["path"]
	if !okID || !okPath {
		return fmt.Errorf("%s: the header must name the columns id and path (and optionally label, mask); it has %q", s.Images, header)
	}
	labelCol, hasLabel := col["label"]
	maskCol, hasMask := col["mask"]
	for line := 2; ; line++ {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.Images, err)
		}
		rec := Record{ID: row[idCol], Path: row[pathCol], Label: -1}
		if rec.ID == "" || rec.Path == "" {
			return fmt.Errorf("%s line %d: empty id or path", s.Images, line)
		}
		if !filepath.IsAbs(rec.Path) {
			rec.Path = filepath.Join(base, rec.Path)
		}
		if hasLabel && strings.TrimSpace(row[labelCol]) != "" {
			if rec.Label, err = s.parseLabel(row[labelCol]); err != nil {
				return fmt.Errorf("%s line %d: %w", s.Images, line, err)
			}
		}
		switch {
		case hasMask && row[maskCol] != "":
			rec.Mask = row[maskCol]
			if !filepath.IsAbs(rec.Mask) {
				rec.Mask = filepath.Join(base, rec.Mask)
			}
		case s.Masks != "":
			rec.Mask = maskPath(s.Masks, rec.ID)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}

// parseLabel reads a label: a class index or a class name.
func (s Source) parseLabel(v string) (int, error) {
	v = strings.TrimSpace(v)
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 || (len(s.Labels) > 0 && n >= len(s.Labels)) {
			return 0, fmt.Errorf("label %d is not a class of the model (%d classes)", n, len(s.Labels))
		}
		return n, nil
	}
	if i := slices.Index(s.Labels, v); i >= 0 {
		return i, nil
	}
	return 0, fmt.Errorf("label %q is neither a class index nor one of the model's labels (%s)", v, strings.Join(s.Labels, ", "))
}

// HasMasks reports whether the source gives ground-truth masks.
func (s Source) HasMasks() bool { return s.Masks != "" || s.csvHasMasks() }

func (s Source) csvHasMasks() bool {
	if !IsCSV(s.Images) {
		return false
	}
	f, err := os.Open(s.Images)
	if err != nil {
		return false
	}
	defer f.Close()
	header, err := csv.NewReader(f).Read()
	return err == nil && slices.ContainsFunc(header, func(h string) bool { return strings.EqualFold(strings.TrimSpace(h), "mask") })
}
