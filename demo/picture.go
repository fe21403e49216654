package demo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// browsers are the headless browsers the picture of the report is taken
// with, in order of preference; none is required.
var browsers = []string{"chromium", "chromium-browser", "google-chrome"}

// picture renders report.html to report.png in the same directory with a
// headless browser, for the README and for people who want an image to paste.
// It returns the PNG's path, or an error saying why there is none.
func picture(ctx context.Context, reportDir string) (string, error) {
	var bin string
	for _, b := range browsers {
		if p, err := exec.LookPath(b); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		return "", fmt.Errorf("no headless browser (%v) on PATH", browsers)
	}
	html, err := filepath.Abs(filepath.Join(reportDir, "report.html"))
	if err != nil {
		return "", err
	}
	png := filepath.Join(reportDir, "report.png")
	profile, err := os.MkdirTemp("", "loadtape-browser-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(profile)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	// The flags keep a headless browser from reaching the network (the
	// report needs none) and from failing as root in a container.
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--hide-scrollbars", "--user-data-dir="+profile,
		"--window-size=1100,1500", "--screenshot="+png, "file://"+html)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %v: %s", filepath.Base(bin), err, lastLine(out))
	}
	if fi, err := os.Stat(png); err != nil || fi.Size() == 0 {
		return "", fmt.Errorf("%s wrote no picture", filepath.Base(bin))
	}
	return png, nil
}

// lastLine is the browser's last word on a failure; its earlier lines are
// start-up noise.
func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	return s[strings.LastIndexByte(s, '\n')+1:]
}
