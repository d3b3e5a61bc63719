//! The admin API on a plain-HTTP loopback listener: health, metrics, pending requests and
//! their approval, revocation, counters, the virtual clock (tests).

use super::*;

/// Serves the admin API (plain HTTP; bind it to loopback): pending requests, approvals,
/// revocation, counters, the virtual clock.
pub async fn serve_admin(ca: Arc<dyn Backend>, listener: TcpListener) {
    loop {
        let (tcp, _) = accept(&listener).await;
        let ca = Arc::clone(&ca);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let ca = Arc::clone(&ca);
                async move { Ok::<_, Infallible>(admin(ca, req).await) }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(
                    TokioIo::new(WriteDeadline::new(tcp, HttpLimits::default().write_timeout)),
                    service,
                )
                .await;
        });
    }
}

pub(super) fn json(value: serde_json::Value) -> Response<Body> {
    response(StatusCode::OK, "application/json", value.to_string())
}

pub(super) async fn admin(ca: Arc<dyn Backend>, req: Request<Incoming>) -> Response<Body> {
    let path: Vec<String> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let method = req.method().clone();
    tokio::task::spawn_blocking(move || {
        let parts: Vec<&str> = path.iter().map(String::as_str).collect();
        admin_route(&*ca, method, &parts)
    })
    .await
    .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "admin task failed"))
}

pub(super) fn admin_route(backend: &dyn Backend, method: Method, parts: &[&str]) -> Response<Body> {
    match (&method, parts) {
        (&Method::GET, ["admin", "health"] | ["health"]) => match backend.health() {
            Ok(()) => text(StatusCode::OK, "ok"),
            Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, e),
        },
        (&Method::GET, ["metrics"]) => response(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            backend.metrics(),
        ),
        _ => match backend.as_ca() {
            Some(ca) => ca_admin_route(ca, method, parts),
            None => text(StatusCode::NOT_FOUND, "no such admin endpoint"),
        },
    }
}

/// The simulated CA's own admin API: pending requests, approvals, revocation, the clock.
pub(super) fn ca_admin_route(ca: &Ca, method: Method, parts: &[&str]) -> Response<Body> {
    match (method, parts) {
        // Since this process started: fsyncs of the state database's WAL (group commits).
        (Method::GET, ["admin", "metrics"]) => json(serde_json::json!({ "fsyncs": ca.fsyncs() })),
        (Method::GET, ["admin", "counters"]) => json(serde_json::Value::Object(
            ca.counters()
                .into_iter()
                .map(|(k, v)| (k, v.into()))
                .collect(),
        )),
        (Method::GET, ["admin", "pending"]) => {
            let list = ca.with_store(|s| s.list_pending()).unwrap_or_default();
            json(serde_json::json!(
                list.iter()
                    .map(|p| serde_json::json!({
                        "id": p.id, "kind": p.kind, "created_at": p.created_at, "polls": p.polls,
                    }))
                    .collect::<Vec<_>>()
            ))
        }
        (Method::POST, ["admin", "pending", id, verb @ ("approve" | "deny")]) => {
            match id.parse::<i64>() {
                Ok(id) => match ca.decide_pending(id, *verb == "approve") {
                    Ok(true) => text(StatusCode::OK, format!("request {id}: {verb}d")),
                    Ok(false) => text(
                        StatusCode::NOT_FOUND,
                        format!("request {id} is not pending"),
                    ),
                    Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e),
                },
                Err(_) => text(StatusCode::BAD_REQUEST, "bad id"),
            }
        }
        (Method::POST, ["admin", "revoke", serial]) => match ca.revoke(serial) {
            Ok(known) => text(
                StatusCode::OK,
                format!(
                    "revoked {serial}{}",
                    if known { "" } else { " (not issued here)" }
                ),
            ),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e),
        },
        (Method::POST, ["admin", "clock", "advance", secs]) => match secs.parse::<u64>() {
            Ok(secs) => match ca.clock().try_advance(Duration::from_secs(secs)) {
                Ok(()) => text(StatusCode::OK, format!("clock now {}", ca.clock().unix())),
                Err(e) => text(StatusCode::BAD_REQUEST, e.to_string()),
            },
            Err(_) => text(StatusCode::BAD_REQUEST, "bad seconds"),
        },
        _ => text(StatusCode::NOT_FOUND, "no such admin endpoint"),
    }
}
