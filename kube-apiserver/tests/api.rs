//! The test API server over HTTP against the lab etcd: discovery, the verbs,
//! resourceVersion = etcd revision, error Status objects, pagination,
//! selectors, CRDs (also across restarts and servers) and namespace deletion.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

fn assert_status(body: &Value, code: u16, reason: &str) {
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["apiVersion"], "v1", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[test]
fn discovery_and_health() {
    let s = Server::start("discovery");
    let v = s.get("/version").expect(200);
    assert_eq!(v["gitVersion"], "v1.20.0-drtool");
    assert_eq!(v["major"], "1");
    for p in ["/healthz", "/livez", "/readyz"] {
        let r = s.get(p);
        assert_eq!((r.status, r.text.as_str()), (200, "ok"), "{p}");
    }

    let api = s.get("/api").expect(200);
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));

    let core = s.get("/api/v1").expect(200);
    assert_eq!(core["kind"], "APIResourceList");
    assert_eq!(core["groupVersion"], "v1");
    let entry = |list: &Value, name: &str| -> Value {
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {list}"))
            .clone()
    };
    for (name, short, kind, namespaced) in [
        ("configmaps", Some("cm"), "ConfigMap", true),
        ("services", Some("svc"), "Service", true),
        ("serviceaccounts", Some("sa"), "ServiceAccount", true),
        (
            "persistentvolumeclaims",
            Some("pvc"),
            "PersistentVolumeClaim",
            true,
        ),
        ("pods", Some("po"), "Pod", true),
        ("events", Some("ev"), "Event", true),
        ("resourcequotas", Some("quota"), "ResourceQuota", true),
        ("limitranges", Some("limits"), "LimitRange", true),
        ("endpoints", Some("ep"), "Endpoints", true),
        ("secrets", None, "Secret", true),
        ("namespaces", Some("ns"), "Namespace", false),
    ] {
        let e = entry(&core, name);
        assert_eq!(e["kind"], kind);
        assert_eq!(e["namespaced"], namespaced);
        assert!(e["verbs"].as_array().unwrap().contains(&json!("list")));
        if let Some(short) = short {
            assert!(e["shortNames"].as_array().unwrap().contains(&json!(short)));
        }
    }

    let groups = s.get("/apis").expect(200);
    assert_eq!(groups["kind"], "APIGroupList");
    let group_names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in [
        "apps",
        "batch",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "autoscaling",
        "policy",
        "apiextensions.k8s.io",
    ] {
        assert!(group_names.contains(&g), "{g} missing from {group_names:?}");
    }
    let batch = s.get("/apis/batch").expect(200);
    assert_eq!(batch["kind"], "APIGroup");
    assert_eq!(batch["preferredVersion"]["groupVersion"], "batch/v1");

    for (gv, resource, short) in [
        ("apps/v1", "deployments", "deploy"),
        ("apps/v1", "statefulsets", "sts"),
        ("apps/v1", "daemonsets", "ds"),
        ("batch/v1", "cronjobs", "cj"),
        ("batch/v1beta1", "cronjobs", "cj"),
        ("networking.k8s.io/v1", "ingresses", "ing"),
        ("networking.k8s.io/v1", "networkpolicies", "netpol"),
        ("autoscaling/v1", "horizontalpodautoscalers", "hpa"),
        ("autoscaling/v2beta2", "horizontalpodautoscalers", "hpa"),
        ("policy/v1", "poddisruptionbudgets", "pdb"),
        ("policy/v1beta1", "poddisruptionbudgets", "pdb"),
        (
            "apiextensions.k8s.io/v1",
            "customresourcedefinitions",
            "crd",
        ),
    ] {
        let list = s.get(&format!("/apis/{gv}")).expect(200);
        assert_eq!(list["groupVersion"], gv);
        let e = entry(&list, resource);
        assert!(e["shortNames"].as_array().unwrap().contains(&json!(short)));
    }
    let jobs = entry(&s.get("/apis/batch/v1").expect(200), "jobs");
    assert_eq!(jobs["kind"], "Job");
    let rbac = s.get("/apis/rbac.authorization.k8s.io/v1").expect(200);
    entry(&rbac, "roles");
    entry(&rbac, "rolebindings");
    let crd = entry(
        &s.get("/apis/apiextensions.k8s.io/v1").expect(200),
        "customresourcedefinitions",
    );
    assert_eq!(crd["namespaced"], false);

    let openapi = s.get("/openapi/v2").expect(200);
    assert_eq!(openapi["swagger"], "2.0");

    assert_status(
        &s.get("/apis/nope.example.com/v1").expect(404),
        404,
        "NotFound",
    );
    assert_status(&s.get("/api/v1/nopes").expect(404), 404, "NotFound");
    assert_status(&s.get("/api/v2").expect(404), 404, "NotFound");
    s.stop();
}

#[test]
fn configmap_lifecycle_and_revisions() {
    let s = Server::start("configmap");
    let base = "/api/v1/namespaces/default/configmaps";

    let created = s
        .post(base, &configmap("app-config", json!({"app": "web"})))
        .expect(201);
    let meta = &created["metadata"];
    assert_eq!(created["kind"], "ConfigMap");
    assert_eq!(created["apiVersion"], "v1");
    assert_eq!(meta["namespace"], "default");
    assert_eq!(meta["uid"].as_str().unwrap().len(), 36);
    assert!(meta["creationTimestamp"].as_str().unwrap().ends_with('Z'));
    assert!(
        meta.get("generation").is_none(),
        "configmaps have no generation"
    );
    let rv1: i64 = meta["resourceVersion"].as_str().unwrap().parse().unwrap();

    // resourceVersion is the mod_revision of kube-apiserver's key; the stored
    // JSON itself carries no resourceVersion.
    let (stored, mod_rev) = etcd_get(&s.key("configmaps/default/app-config")).unwrap();
    assert_eq!(mod_rev, rv1);
    assert!(stored["metadata"].get("resourceVersion").is_none());
    assert_eq!(stored["data"]["key"], "app-config");

    let got = s.get(&format!("{base}/app-config")).expect(200);
    assert_eq!(got, created);

    // The list revision is an etcd revision at which exactly the listed keys exist.
    s.post(base, &configmap("other", json!({}))).expect(201);
    let list = s.get(base).expect(200);
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(names(&list), ["app-config", "other"]);
    for item in list["items"].as_array().unwrap() {
        assert_eq!(item["kind"], "ConfigMap");
        assert_eq!(item["apiVersion"], "v1");
    }
    let list_rv: i64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(list_rv >= rv1 && list_rv <= etcd_revision());
    assert_eq!(etcd_count(&s.key("configmaps/default/"), list_rv), 2);

    // Replace: a stale resourceVersion is a 409 Conflict, the current one wins.
    let mut stale = created.clone();
    stale["data"]["key"] = json!("changed");
    stale["metadata"]["resourceVersion"] = json!("1");
    let conflict = s.put(&format!("{base}/app-config"), &stale).expect(409);
    assert_status(&conflict, 409, "Conflict");
    assert_eq!(conflict["details"]["name"], "app-config");
    assert_eq!(conflict["details"]["kind"], "configmaps");
    let mut fresh = created.clone();
    fresh["data"]["key"] = json!("changed");
    let replaced = s.put(&format!("{base}/app-config"), &fresh).expect(200);
    let rv2: i64 = replaced["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    assert_eq!(replaced["metadata"]["uid"], created["metadata"]["uid"]);
    assert_eq!(
        etcd_get(&s.key("configmaps/default/app-config")).unwrap().1,
        rv2
    );

    // Merge patch; a patch that changes nothing writes nothing.
    let patch = json!({"data": {"extra": "1", "key": null}, "metadata": {"labels": {"tier": "a"}}});
    let patched = s
        .patch(
            &format!("{base}/app-config"),
            "application/merge-patch+json",
            &patch,
        )
        .expect(200);
    assert_eq!(patched["data"], json!({"extra": "1"}));
    assert_eq!(
        patched["metadata"]["labels"],
        json!({"app": "web", "tier": "a"})
    );
    let rv3 = patched["metadata"]["resourceVersion"].clone();
    let again = s
        .patch(
            &format!("{base}/app-config"),
            "application/merge-patch+json",
            &patch,
        )
        .expect(200);
    assert_eq!(again["metadata"]["resourceVersion"], rv3);
    // A resourceVersion inside a patch is a precondition.
    let stale_patch = json!({"metadata": {"resourceVersion": rv1.to_string()}, "data": {"x": "y"}});
    let r = s.patch(
        &format!("{base}/app-config"),
        "application/merge-patch+json",
        &stale_patch,
    );
    assert_status(&r.expect(409), 409, "Conflict");
    let r = s.req_with(
        "PATCH",
        &format!("{base}/app-config"),
        &[("Content-Type", "application/apply-patch+yaml")],
        Some(b"{}"),
    );
    assert_status(&r.expect(415), 415, "UnsupportedMediaType");

    // Delete answers with a Status, then the object is gone.
    let deleted = s.delete(&format!("{base}/app-config")).expect(200);
    assert_eq!(deleted["kind"], "Status");
    assert_eq!(deleted["status"], "Success");
    assert_eq!(deleted["details"]["name"], "app-config");
    assert_eq!(deleted["details"]["uid"], created["metadata"]["uid"]);
    let gone = s.get(&format!("{base}/app-config")).expect(404);
    assert_status(&gone, 404, "NotFound");
    assert_eq!(gone["message"], "configmaps \"app-config\" not found");
    assert_eq!(
        gone["details"],
        json!({"name": "app-config", "kind": "configmaps"})
    );
    assert_status(
        &s.delete(&format!("{base}/app-config")).expect(404),
        404,
        "NotFound",
    );
    assert!(etcd_get(&s.key("configmaps/default/app-config")).is_none());

    // dryRun writes nothing.
    s.post(&format!("{base}?dryRun=All"), &configmap("dry", json!({})))
        .expect(201);
    s.get(&format!("{base}/dry")).expect(404);
    let prefix = s.prefix.clone();
    s.stop();
    cleanup(&prefix);
}

#[test]
fn deployment_generation_patches_and_all_namespaces() {
    let s = Server::start("deployment");
    s.namespace("shop");
    s.namespace("blog");
    let base = "/apis/apps/v1/namespaces/shop/deployments";
    let created = s.post(base, &deployment("web", 2)).expect(201);
    assert_eq!(created["apiVersion"], "apps/v1");
    assert_eq!(created["kind"], "Deployment");
    assert_eq!(created["metadata"]["generation"], 1);
    let (_, rev) = etcd_get(&s.key("deployments/shop/web")).unwrap();
    assert_eq!(created["metadata"]["resourceVersion"], rev.to_string());
    s.post(
        "/apis/apps/v1/namespaces/blog/deployments",
        &deployment("api", 1),
    )
    .expect(201);

    // A spec change bumps generation, a label change does not.
    let mut desired = created.clone();
    desired["spec"]["replicas"] = json!(5);
    let replaced = s.put(&format!("{base}/web"), &desired).expect(200);
    assert_eq!(replaced["metadata"]["generation"], 2);
    let labelled = s
        .patch(
            &format!("{base}/web"),
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"release": "blue"}}}),
        )
        .expect(200);
    assert_eq!(labelled["metadata"]["generation"], 2);
    // Strategic merge patch is applied as a merge patch.
    let scaled = s
        .patch(
            &format!("{base}/web"),
            "application/strategic-merge-patch+json",
            &json!({"spec": {"replicas": 3}}),
        )
        .expect(200);
    assert_eq!(scaled["spec"]["replicas"], 3);
    assert_eq!(scaled["metadata"]["generation"], 3);
    let json_patched = s
        .patch(
            &format!("{base}/web"),
            "application/json-patch+json",
            &json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.26"}]),
        )
        .expect(200);
    assert_eq!(
        json_patched["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );
    assert_eq!(json_patched["metadata"]["uid"], created["metadata"]["uid"]);

    // All namespaces, as `kubectl get deploy -A` lists them.
    let all = s.get("/apis/apps/v1/deployments").expect(200);
    assert_eq!(all["kind"], "DeploymentList");
    assert_eq!(names(&all), ["api", "web"]);
    // POST needs a namespace; PUT on a collection is not a verb.
    let r = s
        .post("/apis/apps/v1/deployments", &deployment("x", 1))
        .expect(405);
    assert_status(&r, 405, "MethodNotAllowed");

    let deleted = s.delete(&format!("{base}/web")).expect(200);
    assert_eq!(deleted["details"]["group"], "apps");
    assert_eq!(deleted["details"]["kind"], "deployments");
    let gone = s.get(&format!("{base}/web")).expect(404);
    assert_eq!(gone["message"], "deployments.apps \"web\" not found");
    assert_eq!(gone["details"]["group"], "apps");
    let prefix = s.prefix.clone();
    s.stop();
    cleanup(&prefix);
}

#[test]
fn error_statuses() {
    let s = Server::start("errors");
    let base = "/api/v1/namespaces/default/configmaps";

    let r = s.post(
        "/api/v1/namespaces/missing/configmaps",
        &configmap("a", json!({})),
    );
    let body = r.expect(404);
    assert_status(&body, 404, "NotFound");
    assert_eq!(body["message"], "namespaces \"missing\" not found");

    s.post(base, &configmap("dup", json!({}))).expect(201);
    let body = s.post(base, &configmap("dup", json!({}))).expect(409);
    assert_status(&body, 409, "AlreadyExists");
    assert_eq!(body["message"], "configmaps \"dup\" already exists");
    assert_eq!(
        body["details"],
        json!({"name": "dup", "kind": "configmaps"})
    );

    let body = s.post(base, &configmap("Bad_Name", json!({}))).expect(422);
    assert_status(&body, 422, "Invalid");
    assert_eq!(body["details"]["kind"], "ConfigMap");
    assert_eq!(body["details"]["causes"][0]["field"], "metadata.name");
    assert!(body["message"].as_str().unwrap().starts_with(
        "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
    ));
    // Namespaces are labels: no dots.
    let body = s
        .post("/api/v1/namespaces", &json!({"metadata": {"name": "a.b"}}))
        .expect(422);
    assert_status(&body, 422, "Invalid");
    let body = s.post(base, &json!({"metadata": {}})).expect(422);
    assert_status(&body, 422, "Invalid");

    let r = s.req_with(
        "POST",
        base,
        &[("Content-Type", "application/json")],
        Some(b"{not json"),
    );
    assert_status(&r.expect(400), 400, "BadRequest");
    let mut wrong_kind = configmap("k", json!({}));
    wrong_kind["kind"] = json!("Secret");
    assert_status(&s.post(base, &wrong_kind).expect(400), 400, "BadRequest");
    let mut wrong_ns = configmap("k", json!({}));
    wrong_ns["metadata"]["namespace"] = json!("elsewhere");
    assert_status(&s.post(base, &wrong_ns).expect(400), 400, "BadRequest");
    let mut wrong_name = configmap("dup", json!({}));
    wrong_name["metadata"]["name"] = json!("other");
    assert_status(
        &s.put(&format!("{base}/dup"), &wrong_name).expect(400),
        400,
        "BadRequest",
    );
    assert_status(
        &s.put(&format!("{base}/nothere"), &configmap("nothere", json!({})))
            .expect(404),
        404,
        "NotFound",
    );

    assert_status(
        &s.post(&format!("{base}/dup"), &configmap("dup", json!({})))
            .expect(405),
        405,
        "MethodNotAllowed",
    );
    assert_status(
        &s.req("PUT", base, Some(&json!({}))).expect(405),
        405,
        "MethodNotAllowed",
    );

    // generateName fills a name with k8s' 5-character suffix.
    let generated = s
        .post(
            base,
            &json!({"metadata": {"generateName": "gen-"}, "data": {}}),
        )
        .expect(201);
    let name = generated["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    // RBAC names are path segments: ':' is fine, also percent-encoded.
    let role = json!({"metadata": {"name": "system:reader"}, "rules": []});
    s.post(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
        &role,
    )
    .expect(201);
    s.get("/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles/system%3Areader")
        .expect(200);
    assert!(etcd_get(&s.key("roles/default/system:reader")).is_some());

    // System namespaces cannot be deleted.
    assert_status(
        &s.delete("/api/v1/namespaces/default").expect(403),
        403,
        "Forbidden",
    );
    // Watch is not implemented and says so.
    assert_status(
        &s.get(&format!("{base}?watch=true")).expect(400),
        400,
        "BadRequest",
    );
    let prefix = s.prefix.clone();
    s.stop();
    cleanup(&prefix);
}

#[test]
fn pagination_is_consistent_and_selectors_filter() {
    let s = Server::start("paging");
    s.namespace("pages");
    let base = "/api/v1/namespaces/pages/configmaps";
    for i in 0..25 {
        let parity = if i % 2 == 0 { "even" } else { "odd" };
        s.post(
            base,
            &configmap(
                &format!("cm-{i:02}"),
                json!({"parity": parity, "n": i.to_string()}),
            ),
        )
        .expect(201);
    }

    let p1 = s.get(&format!("{base}?limit=10")).expect(200);
    assert_eq!(names(&p1).len(), 10);
    assert_eq!(p1["metadata"]["remainingItemCount"], 15);
    let rv = p1["metadata"]["resourceVersion"].clone();
    let token = p1["metadata"]["continue"].as_str().unwrap().to_string();
    // Written after page 1: not part of this list.
    s.post(base, &configmap("cm-99-late", json!({})))
        .expect(201);
    let p2 = s
        .get(&format!("{base}?limit=10&continue={token}"))
        .expect(200);
    assert_eq!(p2["metadata"]["resourceVersion"], rv);
    assert_eq!(p2["metadata"]["remainingItemCount"], 5);
    let token = p2["metadata"]["continue"].as_str().unwrap().to_string();
    let p3 = s
        .get(&format!("{base}?limit=10&continue={token}"))
        .expect(200);
    assert_eq!(p3["metadata"]["resourceVersion"], rv);
    assert!(
        p3["metadata"].get("continue").is_none(),
        "{}",
        p3["metadata"]
    );
    let mut all: Vec<String> = [&p1, &p2, &p3].iter().flat_map(|p| names(p)).collect();
    let expected: Vec<String> = (0..25).map(|i| format!("cm-{i:02}")).collect();
    assert_eq!(all, expected);
    // Without a limit the late one is there.
    all = names(&s.get(base).expect(200));
    assert_eq!(all.len(), 26);

    let bad = s
        .get(&format!("{base}?limit=10&continue=garbage"))
        .expect(400);
    assert_status(&bad, 400, "BadRequest");

    let count = |q: &str| names(&s.get(&format!("{base}?labelSelector={q}")).expect(200)).len();
    assert_eq!(count("parity%3Deven"), 13);
    assert_eq!(count("parity%3D%3Dodd"), 12);
    assert_eq!(count("parity!%3Deven"), 13); // 12 odd + the unlabelled one
    assert_eq!(count("parity%20in%20(even,odd)"), 25);
    assert_eq!(count("parity%20notin%20(even)"), 13);
    assert_eq!(count("parity"), 25);
    assert_eq!(count("!parity"), 1);
    assert_eq!(count("parity%3Deven,n%20in%20(0,2,3)"), 2);
    assert_status(
        &s.get(&format!("{base}?labelSelector=a%20in%20(b"))
            .expect(400),
        400,
        "BadRequest",
    );

    // limit with a selector still fills pages, at one pinned revision.
    let mut pages = Vec::new();
    let mut url = format!("{base}?limit=5&labelSelector=parity%3Deven");
    loop {
        let p = s.get(&url).expect(200);
        pages.push(names(&p).len());
        match p["metadata"]["continue"].as_str() {
            Some(c) => url = format!("{base}?limit=5&labelSelector=parity%3Deven&continue={c}"),
            None => break,
        }
    }
    assert_eq!(pages, [5, 5, 3]);

    let by_name = s
        .get(&format!("{base}?fieldSelector=metadata.name%3Dcm-07"))
        .expect(200);
    assert_eq!(names(&by_name), ["cm-07"]);
    let all_ns = s
        .get("/api/v1/configmaps?fieldSelector=metadata.namespace%3Dpages")
        .expect(200);
    assert_eq!(names(&all_ns).len(), 26);
    let prefix = s.prefix.clone();
    s.stop();
    cleanup(&prefix);
}

#[test]
fn crds_serve_their_resources_across_restarts_and_servers() {
    let s = Server::start("crd");
    s.namespace("lab");
    let crd = s
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &widget_crd("Namespaced"),
        )
        .expect(201);
    let conditions = crd["status"]["conditions"].as_array().unwrap();
    for c in ["Established", "NamesAccepted"] {
        assert!(
            conditions
                .iter()
                .any(|x| x["type"] == c && x["status"] == "True"),
            "{c}"
        );
    }
    assert_eq!(crd["status"]["acceptedNames"]["kind"], "Widget");
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
    assert!(
        etcd_get(&s.key("apiextensions.k8s.io/customresourcedefinitions/widgets.example.com"))
            .is_some()
    );

    // Discoverable at once, in each served version.
    let groups = s.get("/apis").expect(200);
    let g = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "example.com")
        .unwrap()
        .clone();
    assert_eq!(g["preferredVersion"]["version"], "v1");
    for v in ["v1", "v1beta1"] {
        let list = s.get(&format!("/apis/example.com/{v}")).expect(200);
        let r = &list["resources"][0];
        assert_eq!(
            (
                r["name"].as_str(),
                r["kind"].as_str(),
                r["namespaced"].as_bool()
            ),
            (Some("widgets"), Some("Widget"), Some(true))
        );
        assert_eq!(r["shortNames"], json!(["wd"]));
    }

    let base = "/apis/example.com/v1/namespaces/lab/widgets";
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 3}});
    let created = s.post(base, &w).expect(201);
    assert_eq!(created["metadata"]["generation"], 1);
    let (_, rev) = etcd_get(&s.key("example.com/widgets/lab/w1")).unwrap();
    assert_eq!(created["metadata"]["resourceVersion"], rev.to_string());
    let list = s.get(base).expect(200);
    assert_eq!(list["kind"], "WidgetList");
    assert_eq!(list["apiVersion"], "example.com/v1");
    assert_eq!(names(&list), ["w1"]);
    assert_eq!(list["items"][0]["kind"], "Widget");
    // Same object through the other served version.
    let beta = s
        .get("/apis/example.com/v1beta1/namespaces/lab/widgets/w1")
        .expect(200);
    assert_eq!(beta["apiVersion"], "example.com/v1beta1");

    // PUT of the CRD as read back changes nothing: same resourceVersion.
    let crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com";
    let current = s.get(crd_path).expect(200);
    let put = s.put(crd_path, &current).expect(200);
    assert_eq!(
        put["metadata"]["resourceVersion"],
        current["metadata"]["resourceVersion"]
    );

    let mut bad = widget_crd("Namespaced");
    bad["metadata"]["name"] = json!("gadgets.example.com");
    let body = s
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &bad,
        )
        .expect(422);
    assert_status(&body, 422, "Invalid");

    // A second server on the same etcd serves it too; so does a restarted one.
    let prefix = s.prefix.clone();
    let second = Server::start_on(&prefix);
    assert_eq!(names(&second.get(base).expect(200)), ["w1"]);
    s.stop();
    let restarted = Server::start_on(&prefix);
    assert_eq!(names(&restarted.get(base).expect(200)), ["w1"]);
    let disc = restarted.get("/apis/example.com/v1").expect(200);
    assert_eq!(disc["resources"][0]["name"], "widgets");

    // A CRD created through one server is served by the other at once.
    let cluster_crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "zones.infra.example.org"},
        "spec": {"group": "infra.example.org", "scope": "Cluster",
                 "names": {"plural": "zones", "kind": "Zone"},
                 "versions": [{"name": "v1alpha1", "served": true, "storage": true}]}
    });
    restarted
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &cluster_crd,
        )
        .expect(201);
    let zone = json!({"apiVersion": "infra.example.org/v1alpha1", "kind": "Zone", "metadata": {"name": "z1"}});
    second
        .post("/apis/infra.example.org/v1alpha1/zones", &zone)
        .expect(201);
    assert!(etcd_get(&format!("{prefix}/infra.example.org/zones/z1")).is_some());
    restarted
        .get("/apis/infra.example.org/v1alpha1/zones/z1")
        .expect(200);

    // Deleting the CRD deletes its objects and stops serving it.
    restarted
        .delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
        .expect(200);
    assert_eq!(etcd_count(&format!("{prefix}/example.com/widgets/"), 0), 0);
    assert_status(&restarted.get(base).expect(404), 404, "NotFound");
    assert!(
        restarted.get("/apis").json()["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["name"] != "example.com")
    );
    second.stop();
    restarted.stop();
    cleanup(&prefix);
}

#[test]
fn namespace_delete_removes_its_contents() {
    let s = Server::start("nsdelete");
    s.namespace("doomed");
    s.namespace("kept");
    s.post(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &widget_crd("Namespaced"),
    )
    .expect(201);
    for ns in ["doomed", "kept"] {
        s.post(
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            &configmap("cfg", json!({})),
        )
        .expect(201);
        s.post(
            &format!("/apis/apps/v1/namespaces/{ns}/deployments"),
            &deployment("web", 1),
        )
        .expect(201);
        s.post(
            &format!("/api/v1/namespaces/{ns}/services"),
            &json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}),
        )
        .expect(201);
        s.post(
            &format!("/apis/example.com/v1/namespaces/{ns}/widgets"),
            &json!({"metadata": {"name": "w"}}),
        )
        .expect(201);
    }
    assert!(etcd_get(&s.key("services/specs/doomed/web")).is_some());
    let ns = s.get("/api/v1/namespaces/doomed").expect(200);
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));

    let deleted = s.delete("/api/v1/namespaces/doomed").expect(200);
    assert_eq!(deleted["kind"], "Namespace");
    assert_eq!(deleted["status"]["phase"], "Terminating");
    assert_status(
        &s.get("/api/v1/namespaces/doomed").expect(404),
        404,
        "NotFound",
    );
    for key in [
        "configmaps/doomed/",
        "deployments/doomed/",
        "services/specs/doomed/",
        "example.com/widgets/doomed/",
    ] {
        assert_eq!(etcd_count(&s.key(key), 0), 0, "{key} not emptied");
    }
    assert_eq!(names(&s.get("/api/v1/configmaps").expect(200)), ["cfg"]);
    assert_eq!(
        names(&s.get("/apis/example.com/v1/widgets").expect(200)),
        ["w"]
    );
    assert_eq!(etcd_count(&s.key("deployments/kept/"), 0), 1);
    // Creating into the deleted namespace fails like on a real cluster.
    assert_status(
        &s.post(
            "/api/v1/namespaces/doomed/configmaps",
            &configmap("x", json!({})),
        )
        .expect(404),
        404,
        "NotFound",
    );
    let prefix = s.prefix.clone();
    s.stop();
    cleanup(&prefix);
}

#[test]
fn tables_for_kubectl_get() {
    let s = Server::start("table");
    s.post(
        "/api/v1/namespaces/default/configmaps",
        &configmap("shown", json!({})),
    )
    .expect(201);
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let t = s
        .req_with(
            "GET",
            "/api/v1/configmaps?limit=500",
            &[("Accept", accept)],
            None,
        )
        .expect(200);
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Age"]);
    let row = &t["rows"][0];
    assert_eq!(row["cells"][0], "shown");
    assert!(row["cells"][1].as_str().unwrap().ends_with('s'));
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(row["object"]["metadata"]["namespace"], "default");
    let one = s
        .req_with(
            "GET",
            "/api/v1/namespaces/default/configmaps/shown",
            &[("Accept", accept)],
            None,
        )
        .expect(200);
    assert_eq!(one["rows"].as_array().unwrap().len(), 1);
    let prefix = s.prefix.clone();
    s.stop();
    cleanup(&prefix);
}
