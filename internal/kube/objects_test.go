package kube

import (
	"maps"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/aipress/aipress/internal/sitefw"
)

func TestValidShardName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"k8s-1", true},
		{"eu-west-42", true},
		{"", false},
		{"K8S-1", false},
		{"a_b", false},
		{"-a", false},
		{"a234567890123456789012345678901234567890", true},
		{"a2345678901234567890123456789012345678901", false},
	}
	for _, tt := range tests {
		if err := ValidShardName(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidShardName(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

// The same spec gives the same objects and hashes (so a reconcile of an
// unchanged shard is a no-op), and any change gives another hash.
func TestObjectsHashes(t *testing.T) {
	set := Settings{Namespace: "ns", Image: "img", ServerURL: "http://s"}
	spec := ShardSpec{Name: "k8s-1", Capacity: 50}
	o := Owner{Name: "aipress-shard-k8s-1", UID: "u1"}
	hashes := func(set Settings, spec ShardSpec, o Owner) []string {
		objs, err := Objects(set, spec, o)
		if err != nil {
			t.Fatal(err)
		}
		var h []string
		for _, u := range objs {
			h = append(h, u.GetAnnotations()[AnnotationHash])
		}
		return h
	}
	a, b := hashes(set, spec, o), hashes(set, spec, o)
	if len(a) != 5 {
		t.Fatalf("%d objects with an own MariaDB, want 5", len(a))
	}
	for i := range a {
		if a[i] == "" || a[i] != b[i] {
			t.Errorf("object %d: hashes %q and %q", i, a[i], b[i])
		}
	}
	set2 := set
	set2.Image = "img2"
	if c := hashes(set2, spec, o); c[1] == a[1] {
		t.Error("a new image did not change the StatefulSet's hash")
	}
	spec.DBReplica = true
	if c := hashes(set, spec, o); len(c) != 7 || c[0] != a[0] || c[1] == a[1] || c[3] != a[3] || c[4] != a[4] {
		t.Errorf("with a read replica: hashes %v (without: %v): want 7 objects, the agent's StatefulSet changed (its flags), the primary's not", c, a)
	}
	spec.DBReplica = false
	spec.ExternalMySQL = &ExternalMySQL{Host: "db:3306", Secret: "s"}
	if c := hashes(set, spec, o); len(c) != 3 {
		t.Errorf("%d objects with an external MySQL, want 3 (no MariaDB Service and StatefulSet)", len(c))
	}
}

// A shard pod runs under the runtime's seccomp profile; its agent keeps
// only ShardCapabilities and cannot gain privileges; before it starts, the
// init container, with NET_ADMIN only, applies the site firewall for the
// range site users are created in, allowing the shard's database.
func TestShardPodHardening(t *testing.T) {
	for _, tt := range []struct {
		spec   ShardSpec
		direct bool
		db     string // what the site users may reach ("": no database)
	}{
		{ShardSpec{Name: "k8s-1", Capacity: 50}, true, "aipress-shard-k8s-1-db:3306"},
		{ShardSpec{Name: "k8s-2", Capacity: 50, ExternalMySQL: &ExternalMySQL{Host: "10.1.2.3:3306", Secret: "s"}}, true, "10.1.2.3:3306"},
		// With the pooler the sites' PHP talks to its Unix socket only.
		{ShardSpec{Name: "k8s-3", Capacity: 50}, false, ""},
		{ShardSpec{Name: "k8s-4", Capacity: 50, DBReplica: true}, false, ""},
		{ShardSpec{Name: "k8s-5", Capacity: 50, ExternalMySQL: &ExternalMySQL{Host: "10.1.2.3:3306", Secret: "s"}}, false, ""},
	} {
		set := Settings{Namespace: "ns", Image: "img", ServerURL: "http://s", SiteFirewallArgs: []string{"--allow", "10.8.0.0/14:3306"}, DirectDB: tt.direct}
		set.defaults()
		pod := shardStatefulSet(set, tt.spec, Owner{Name: "a", UID: "u"}).Spec.Template.Spec
		if sc := pod.SecurityContext; sc == nil || sc.SeccompProfile == nil || sc.SeccompProfile.Type != "RuntimeDefault" {
			t.Errorf("%s: pod security context %+v", tt.spec.Name, sc)
		}
		agent := pod.Containers[0]
		sc := agent.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Privileged != nil ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
			!slices.Equal(sc.Capabilities.Add, ShardCapabilities) {
			t.Errorf("%s: agent security context %+v", tt.spec.Name, sc)
		}
		if i := slices.Index(agent.Args, "--site-firewall"); i < 0 || agent.Args[i+1] != "off" {
			t.Errorf("%s: agent args %v: want --site-firewall off (the init container applies it)", tt.spec.Name, agent.Args)
		}
		if len(pod.InitContainers) != 1 {
			t.Fatalf("%s: init containers %v", tt.spec.Name, pod.InitContainers)
		}
		ic := pod.InitContainers[0]
		want := []string{"sitefw", "apply", "--uid-range", sitefw.DefaultSiteIDs.String(), "--deny-private"}
		if tt.db != "" {
			want = append(want, "--allow", tt.db)
		}
		want = append(want, "--allow", "10.8.0.0/14:3306")
		if ic.Image != set.Image || !slices.Equal(ic.Args, want) {
			t.Errorf("%s: init container %s %v, want %v", tt.spec.Name, ic.Image, ic.Args, want)
		}
		isc := ic.SecurityContext
		if isc == nil || isc.Capabilities == nil || !slices.Equal(isc.Capabilities.Add, []corev1.Capability{"NET_ADMIN"}) ||
			!slices.Equal(isc.Capabilities.Drop, []corev1.Capability{"ALL"}) || isc.AllowPrivilegeEscalation == nil || *isc.AllowPrivilegeEscalation {
			t.Errorf("%s: init container security context %+v", tt.spec.Name, isc)
		}
	}
}

// stsOf returns the StatefulSets of spec by name.
func stsOf(t *testing.T, set Settings, spec ShardSpec) map[string]*appsv1.StatefulSet {
	t.Helper()
	objs, err := Objects(set, spec, Owner{Name: "a", UID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*appsv1.StatefulSet{}
	for _, u := range objs {
		if u.GetKind() != "StatefulSet" {
			continue
		}
		var s appsv1.StatefulSet
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &s); err != nil {
			t.Fatal(err)
		}
		out[s.Name] = &s
	}
	return out
}

func hasArgs(args []string, want ...string) bool {
	for i := range args {
		if i+len(want) <= len(args) && slices.Equal(args[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

// A shard with a read replica gets a second MariaDB StatefulSet (its own
// claim, the primary's root password, the replica's options: server_id 2,
// read-only, relay log) and Service; the primary logs its binary log as
// point-in-time recovery and the replica need it; the agent is told the
// replica's address and that it manages its replication.
func TestReplicaObjects(t *testing.T) {
	set := Settings{Namespace: "ns", Image: "img", ServerURL: "http://s"}
	spec := ShardSpec{Name: "k8s-1", Capacity: 50, DBReplica: true}
	sts := stsOf(t, set, spec)
	agent, primary, replica := sts["aipress-shard-k8s-1"], sts["aipress-shard-k8s-1-db"], sts["aipress-shard-k8s-1-db-replica"]
	if agent == nil || primary == nil || replica == nil {
		t.Fatalf("StatefulSets %v", slices.Collect(maps.Keys(sts)))
	}
	binlog := []string{"--log-bin=/var/lib/mysql/mariadb-bin", "--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL",
		"--gtid-domain-id=0", "--gtid-strict-mode=ON", "--log-bin-trust-function-creators=ON"}
	pa, ra := primary.Spec.Template.Spec.Containers[0].Args, replica.Spec.Template.Spec.Containers[0].Args
	for _, a := range binlog {
		if !slices.Contains(pa, a) {
			t.Errorf("primary args %v: no %s", pa, a)
		}
	}
	if !slices.Contains(pa, "--server-id=1") || slices.Contains(pa, "--read-only=ON") {
		t.Errorf("primary args %v: want server id 1, writable", pa)
	}
	for _, a := range []string{"--server-id=2", "--read-only=ON", "--relay-log=/var/lib/mysql/relay-bin", "--relay-log-recovery=ON"} {
		if !slices.Contains(ra, a) {
			t.Errorf("replica args %v: no %s", ra, a)
		}
	}
	rc := replica.Spec.Template.Spec.Containers[0]
	// The image's healthcheck.sh has the tests connect and
	// innodb_initialized (no "started"); the latter logs in as the
	// healthcheck account, whose password a replica's seed replaces.
	pc := primary.Spec.Template.Spec.Containers[0]
	for _, tt := range []struct {
		what string
		p    *corev1.Probe
		want []string
	}{
		{"primary startup", pc.StartupProbe, []string{"healthcheck.sh", "--connect", "--innodb_initialized"}},
		{"primary readiness", pc.ReadinessProbe, []string{"healthcheck.sh", "--connect", "--innodb_initialized"}},
		{"primary liveness", pc.LivenessProbe, []string{"healthcheck.sh", "--connect"}},
		{"replica startup", rc.StartupProbe, []string{"healthcheck.sh", "--connect"}},
		{"replica readiness", rc.ReadinessProbe, []string{"healthcheck.sh", "--connect"}},
		{"replica liveness", rc.LivenessProbe, []string{"healthcheck.sh", "--connect"}},
	} {
		if tt.p == nil || tt.p.Exec == nil || !slices.Equal(tt.p.Exec.Command, tt.want) {
			t.Errorf("%s probe %+v, want %v", tt.what, tt.p, tt.want)
		}
	}
	if len(rc.Env) != 1 || rc.Env[0].Name != "MARIADB_ROOT_PASSWORD" || rc.Env[0].ValueFrom.SecretKeyRef.Name != "aipress-shard-k8s-1-db" {
		t.Errorf("replica env %+v: want the primary's root password", rc.Env)
	}
	if l := replica.Spec.Template.Labels; l[LabelComponent] != ComponentShardDBReplica || l[LabelShard] != "k8s-1" ||
		replica.Spec.Selector.MatchLabels[LabelComponent] != ComponentShardDBReplica {
		t.Errorf("replica labels %v, selector %v", l, replica.Spec.Selector)
	}
	if vt := replica.Spec.VolumeClaimTemplates; len(vt) != 1 || vt[0].Name != "data" || rc.VolumeMounts[0].Name != "data" {
		t.Errorf("replica volume claim templates %+v", vt)
	}
	// The pooler's socket is under --data-dir, on the agent's data
	// volume; php-fpm, the agent's child, runs in the same container and
	// needs no volume of its own.
	ap := agent.Spec.Template.Spec
	if len(ap.Containers) != 1 || !hasArgs(ap.Containers[0].Args, "--data-dir", ShardDataDir) ||
		!slices.ContainsFunc(ap.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == "data" && m.MountPath == ShardDataDir }) {
		t.Errorf("agent pod: containers %d, args %v, mounts %v", len(ap.Containers), ap.Containers[0].Args, ap.Containers[0].VolumeMounts)
	}
	aa := agent.Spec.Template.Spec.Containers[0].Args
	if !hasArgs(aa, "--db-replica", "aipress-shard-k8s-1-db-replica:3306", "--db-replica-managed") || slices.Contains(aa, "--db-pooler=false") {
		t.Errorf("agent args %v: want the replica's address, managed, and the pooler", aa)
	}

	// Without a replica: no flags; an external server's replica is given
	// by address and not managed.
	aa = stsOf(t, set, ShardSpec{Name: "k8s-1", Capacity: 50})["aipress-shard-k8s-1"].Spec.Template.Spec.Containers[0].Args
	if slices.Contains(aa, "--db-replica") || slices.Contains(aa, "--db-replica-managed") {
		t.Errorf("agent args without a replica: %v", aa)
	}
	ext := ShardSpec{Name: "k8s-2", Capacity: 50, ExternalMySQL: &ExternalMySQL{Host: "10.1.2.3:3306", Secret: "s", Replica: "10.1.2.4:3306"}}
	sts = stsOf(t, set, ext)
	if len(sts) != 1 {
		t.Errorf("external server with a replica: StatefulSets %v, want the agent's only", slices.Collect(maps.Keys(sts)))
	}
	aa = sts["aipress-shard-k8s-2"].Spec.Template.Spec.Containers[0].Args
	if !hasArgs(aa, "--db-replica", "10.1.2.4:3306") || slices.Contains(aa, "--db-replica-managed") {
		t.Errorf("agent args with an external replica: %v", aa)
	}
}

// Replica options that cannot work are refused.
func TestReplicaSpecChecks(t *testing.T) {
	set := Settings{Namespace: "ns", Image: "img", ServerURL: "http://s"}
	direct := set
	direct.DirectDB = true
	x := &ExternalMySQL{Host: "10.1.2.3:3306", Secret: "s"}
	for _, tt := range []struct {
		name string
		set  Settings
		spec ShardSpec
	}{
		{"in-cluster replica of an external server", set, ShardSpec{Name: "a", DBReplica: true, ExternalMySQL: x}},
		{"replica without the pooler", direct, ShardSpec{Name: "a", DBReplica: true}},
		{"external replica without the pooler", direct, ShardSpec{Name: "a", ExternalMySQL: &ExternalMySQL{Host: x.Host, Secret: "s", Replica: "r:3306"}}},
		{"external replica without a port", set, ShardSpec{Name: "a", ExternalMySQL: &ExternalMySQL{Host: x.Host, Secret: "s", Replica: "r"}}},
		{"name too long for the replica's Service", set, ShardSpec{Name: strings.Repeat("a", 39), DBReplica: true}},
	} {
		if _, err := Objects(tt.set, tt.spec, Owner{Name: "a", UID: "u"}); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	if _, err := Objects(set, ShardSpec{Name: strings.Repeat("a", 38), DBReplica: true}, Owner{Name: "a", UID: "u"}); err != nil {
		t.Errorf("38 characters with a replica: %v", err)
	}
}

// The PodDisruptionBudget covers the agent's and the primary's pods, not
// the read replica's (its eviction is no outage).
func TestPDBLeavesReplica(t *testing.T) {
	set := Settings{Namespace: "ns", Image: "img", ServerURL: "http://s"}
	p := pdb(set, ShardSpec{Name: "k8s-1", DBReplica: true}, Owner{Name: "a", UID: "u"})
	sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	for c, want := range map[string]bool{ComponentShard: true, ComponentShardDB: true, ComponentShardDBReplica: false} {
		if got := sel.Matches(labels.Set(objectLabels("k8s-1", c))); got != want {
			t.Errorf("PDB selects %s pods: %v, want %v", c, got, want)
		}
	}
	if sel.Matches(labels.Set(objectLabels("k8s-2", ComponentShard))) {
		t.Error("PDB selects another shard's pods")
	}
}
