// Package deploy_test checks the files that run loadtape elsewhere: the
// Kubernetes manifests decode strictly into the Kubernetes API's own types
// and agree with each other and with loadtape's flags; the container image
// definition is multi-stage and runs as a user that is not root; `make
// image` picks a builder or says there is none.
package deploy_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/loadtape/loadtape/replay"
)

// decodeStrict decodes a manifest into out the way kubectl's strict field
// validation does: an unknown or duplicated field is an error.
func decodeStrict(t *testing.T, path string, out any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestManifestsStrict(t *testing.T) {
	var job, jobS3, analyze batchv1.Job
	var cm corev1.ConfigMap
	var pvc corev1.PersistentVolumeClaim
	decodeStrict(t, "kubernetes/job.yaml", &job)
	decodeStrict(t, "kubernetes/job-s3.yaml", &jobS3)
	decodeStrict(t, "kubernetes/analyze-job.yaml", &analyze)
	decodeStrict(t, "kubernetes/configmap.yaml", &cm)
	decodeStrict(t, "kubernetes/pvc.yaml", &pvc)
	for _, k := range []struct{ got, want string }{
		{job.APIVersion + " " + job.Kind, "batch/v1 Job"}, {jobS3.APIVersion + " " + jobS3.Kind, "batch/v1 Job"},
		{analyze.APIVersion + " " + analyze.Kind, "batch/v1 Job"},
		{cm.APIVersion + " " + cm.Kind, "v1 ConfigMap"}, {pvc.APIVersion + " " + pvc.Kind, "v1 PersistentVolumeClaim"},
	} {
		if k.got != k.want {
			t.Errorf("kind %q, want %q", k.got, k.want)
		}
	}

	// On a shared volume, started at one instant.
	flags := checkShardJob(t, "job.yaml", job, cm, pvc.Name)
	if flags["start-at"] != "$(START_AT)" {
		t.Errorf("job.yaml: --start-at %q, want $(START_AT)", flags["start-at"])
	}
	if !strings.HasPrefix(flags["out"], "/data/") {
		t.Errorf("job.yaml: --out %q, want the shared volume", flags["out"])
	}
	// On object storage, started by the barrier.
	flags = checkShardJob(t, "job-s3.yaml", jobS3, cm, pvc.Name)
	if flags["start-at"] != "" || flags["barrier"] != "s3://loadtape/runs/$(RUN_ID)" || !strings.HasPrefix(flags["out"], flags["barrier"]+"/") ||
		!strings.HasPrefix(flags["captures"], "s3://") {
		t.Errorf("job-s3.yaml: --start-at %q --barrier %q --out %q --captures %q: want the barrier under the run's prefix and the run beside it",
			flags["start-at"], flags["barrier"], flags["out"], flags["captures"])
	}
	if ef := jobS3.Spec.Template.Spec.Containers[0].EnvFrom; len(ef) != 1 || ef[0].SecretRef == nil || ef[0].SecretRef.Name == "" {
		t.Errorf("job-s3.yaml: envFrom %+v, want the store's credentials from a Secret", ef)
	}

	// The analyze Job reads the run the replay Job writes.
	ap := analyze.Spec.Template.Spec
	checkNonRoot(t, "analyze job", ap)
	ac := ap.Containers[0]
	if !strings.Contains(strings.Join(ac.Args, " "), `/data/runs/"$RUN_ID"/shard-*`) || ac.Env[0].Name != "RUN_ID" || ac.Env[0].Value != job.Name {
		t.Errorf("analyze job: args %v env %+v, want every shard of run %s", ac.Args, ac.Env, job.Name)
	}
}

// checkShardJob checks what every sharded replay Job needs and returns its
// replay flags.
func checkShardJob(t *testing.T, file string, job batchv1.Job, cm corev1.ConfigMap, claim string) map[string]string {
	t.Helper()
	s := job.Spec
	if s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("%s: completionMode %v, want Indexed", file, s.CompletionMode)
	}
	if s.Completions == nil || s.Parallelism == nil || *s.Completions != *s.Parallelism || *s.Completions < 2 {
		t.Fatalf("%s: completions %v, parallelism %v: want equal, at least 2", file, s.Completions, s.Parallelism)
	}
	if s.BackoffLimit == nil || *s.BackoffLimit != 0 {
		t.Errorf("%s: backoffLimit %v: a retried shard would start after the others", file, s.BackoffLimit)
	}
	pod := s.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("%s: restartPolicy %q", file, pod.RestartPolicy)
	}
	checkNonRoot(t, file, pod)
	c := pod.Containers[0]
	flags := argFlags(c.Args)
	if c.Args[0] != "replay" {
		t.Fatalf("%s: args %v: want replay first", file, c.Args)
	}
	if got, want := flags["shards"], strconv.Itoa(int(*s.Completions)); got != want {
		t.Errorf("%s: --shards %q, completions %s: want equal", file, got, want)
	}
	if flags["run-id"] != "$(RUN_ID)" {
		t.Errorf("%s: --run-id %q, want $(RUN_ID)", file, flags["run-id"])
	}
	if !strings.Contains(flags["out"], "$(JOB_COMPLETION_INDEX)") || !strings.Contains(flags["out"], "$(RUN_ID)") {
		t.Errorf("%s: --out %q: want a directory per run and shard", file, flags["out"])
	}

	// Every $(VAR) in the args is set: by the env list, or by the Job
	// controller (the completion index).
	env := map[string]corev1.EnvVar{"JOB_COMPLETION_INDEX": {}}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	for _, a := range c.Args {
		for _, m := range regexp.MustCompile(`\$\(([A-Z_]+)\)`).FindAllStringSubmatch(a, -1) {
			if _, ok := env[m[1]]; !ok {
				t.Errorf("%s: arg %q: $(%s) is not in the container's env", file, a, m[1])
			}
		}
	}
	if r := env["RUN_ID"].ValueFrom; r == nil || r.FieldRef == nil || r.FieldRef.FieldPath != "metadata.labels['batch.kubernetes.io/job-name']" {
		t.Errorf("%s: RUN_ID %+v: want the Job's name", file, env["RUN_ID"])
	}
	if sk := env["API_TOKEN"].ValueFrom; sk == nil || sk.SecretKeyRef == nil || sk.SecretKeyRef.Name == "" || env["API_TOKEN"].Value != "" {
		t.Errorf("%s: API_TOKEN %+v: want it from a Secret, not written in the manifest", file, env["API_TOKEN"])
	}
	if !strings.Contains(flags["header"], "$(API_TOKEN)") {
		t.Errorf("%s: --header %q: want the credential from the Secret", file, flags["header"])
	}

	// The volumes name the ConfigMap and the claim defined beside the Job,
	// and the profile's path is where the ConfigMap is mounted.
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	for _, v := range pod.Volumes {
		switch {
		case v.ConfigMap != nil:
			if v.ConfigMap.Name != cm.Name {
				t.Errorf("%s: volume %s: ConfigMap %q, defined: %q", file, v.Name, v.ConfigMap.Name, cm.Name)
			}
			if want := mounts[v.Name] + "/profile.yaml"; flags["profile"] != want {
				t.Errorf("%s: --profile %q, the ConfigMap is mounted as %q", file, flags["profile"], want)
			}
		case v.PersistentVolumeClaim != nil:
			if v.PersistentVolumeClaim.ClaimName != claim {
				t.Errorf("%s: volume %s: claim %q, defined: %q", file, v.Name, v.PersistentVolumeClaim.ClaimName, claim)
			}
		}
		if _, ok := mounts[v.Name]; !ok {
			t.Errorf("%s: volume %s is not mounted", file, v.Name)
		}
	}
	if mounts["tmp"] != "/tmp" {
		t.Errorf("%s: no writable /tmp (the root is read-only; s3:// paths are staged there)", file)
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("%s: container securityContext %+v: want a read-only root", file, c.SecurityContext)
	}

	// The profile is one replay accepts, and each of its services has a
	// --target.
	prof, err := replay.ParseProfile([]byte(cm.Data["profile.yaml"]), "configmap.yaml profile.yaml")
	if err != nil {
		t.Fatalf("the ConfigMap's profile: %v", err)
	}
	for name, sc := range prof.Scenarios {
		if !slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--target="+sc.Service+"=") }) {
			t.Errorf("%s: scenario %s: no --target for service %s in %v", file, name, sc.Service, c.Args)
		}
	}
	return flags
}

func checkNonRoot(t *testing.T, what string, pod corev1.PodSpec) {
	t.Helper()
	sc := pod.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("%s: pod securityContext %+v, want runAsNonRoot and a user id other than 0", what, sc)
	}
}

// argFlags maps --name=value args to name → value.
func argFlags(args []string) map[string]string {
	m := map[string]string{}
	for _, a := range args {
		if name, v, ok := strings.Cut(strings.TrimPrefix(a, "--"), "="); ok && strings.HasPrefix(a, "--") {
			m[name] = v
		}
	}
	return m
}

// TestStrictDecodeRefusesMistakes: the check above would catch a misspelt,
// misplaced or repeated field, or a wrong type.
func TestStrictDecodeRefusesMistakes(t *testing.T) {
	good, err := os.ReadFile("kubernetes/job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ old, new, want string }{
		"misspelt":  {"  parallelism: 4\n", "  paralelism: 4\n", `unknown field "paralelism"`},
		"misplaced": {"          imagePullPolicy: IfNotPresent\n", "          imagePullPolicy: IfNotPresent\n          completionMode: Indexed\n", `unknown field "completionMode"`},
		"repeated":  {"  completions: 4\n", "  completions: 4\n  completions: 5\n", `"completions" already set`},
		"type":      {"  completions: 4\n", "  completions: four\n", "cannot unmarshal string"},
	} {
		if !strings.Contains(string(good), c.old) {
			t.Fatalf("%s: job.yaml lacks %q", name, c.old)
		}
		bad := strings.Replace(string(good), c.old, c.new, 1)
		var job batchv1.Job
		err := yaml.UnmarshalStrict([]byte(bad), &job)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
}

func TestContainerfile(t *testing.T) {
	data, err := os.ReadFile("Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	var froms []string
	user := ""
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "FROM":
			froms, user = append(froms, f[1]), ""
		case len(f) >= 2 && f[0] == "USER":
			user = f[1]
		}
	}
	if len(froms) < 2 {
		t.Fatalf("FROM %v: want a build stage and a runtime stage", froms)
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("the final stage runs as %q, want a user that is not root", user)
	}
	// The build stage's Go is the one go.mod asks for.
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(mod)
	if m == nil || !strings.HasPrefix(froms[0], "golang:"+string(m[1])) {
		t.Errorf("build stage %q, go.mod wants go %s", froms[0], m[1])
	}
	if !strings.Contains(string(data), "./cmd/loadtape") {
		t.Error("the build stage does not build ./cmd/loadtape")
	}
}

// TestMakeImage runs `make image` with PATH holding only what it is given:
// no builder (it says so and fails), docker without a daemon, and podman
// (a script that records how it was called).
func TestMakeImage(t *testing.T) {
	makeBin, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed")
	}
	run := func(tools map[string]string) (string, error) {
		dir := t.TempDir()
		for name, script := range tools {
			if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(makeBin, "-s", "image", "VERSION=t1", "IMAGE=loadtape:t1")
		cmd.Dir = ".."
		cmd.Env = []string{"PATH=" + dir, "HOME=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run(nil)
	if err == nil || !strings.Contains(out, "no container builder installed (podman, buildah or docker)") {
		t.Errorf("no builder: %v\n%s", err, out)
	}
	out, err = run(map[string]string{"docker": "exit 1"})
	if err == nil || !strings.Contains(out, "docker is installed but its daemon does not answer") {
		t.Errorf("docker without a daemon: %v\n%s", err, out)
	}
	log := filepath.Join(t.TempDir(), "podman.log")
	out, err = run(map[string]string{"podman": fmt.Sprintf(`echo "$@" > %s`, log), "docker": "exit 1"})
	if err != nil {
		t.Fatalf("podman: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(log)
	if want := "build -f deploy/Containerfile --build-arg VERSION=t1 -t loadtape:t1 .\n"; string(got) != want {
		t.Errorf("podman called with %q, want %q", got, want)
	}
}

// TestJobFlagsExist: every flag the Jobs give replay is one the binary
// has (a renamed flag would fail every pod).
func TestJobFlagsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "loadtape")
	build := exec.Command("go", "build", "-o", bin, "../cmd/loadtape")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	help, err := exec.Command(bin, "replay", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("replay --help: %v\n%s", err, help)
	}
	for _, file := range []string{"kubernetes/job.yaml", "kubernetes/job-s3.yaml"} {
		var job batchv1.Job
		decodeStrict(t, file, &job)
		for name := range argFlags(job.Spec.Template.Spec.Containers[0].Args) {
			if !strings.Contains(string(help), "--"+name+" ") {
				t.Errorf("%s: replay has no flag --%s", file, name)
			}
		}
	}
}
