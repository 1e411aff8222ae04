//! `peerix_http_requests_total{route, status}`: every request a router answers, counted by the
//! route template it matched (axum's [`MatchedPath`], such as `/nar/{file}`) and the response's
//! status. A request no route matched counts under `unmatched`, never under its URI, so the
//! label set is bounded by the routes and the statuses they answer with.
//!
//! On the narinfo hot path this costs one lock and one lookup by the template: the template is
//! copied once, the first time its route answers.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use tower::{Layer, Service};

/// The `route` of requests no route matched.
const UNMATCHED: &str = "unmatched";

/// Requests answered with each status, as `(status, count)`: a route answers with few.
type ByStatus = Vec<(u16, u64)>;

/// Requests answered, by route template, then by status.
#[derive(Default)]
pub(crate) struct RequestCounts {
    by_route: Mutex<HashMap<Arc<str>, ByStatus>>,
}

impl RequestCounts {
    fn record(&self, route: &str, status: u16) {
        // Plain numbers, valid even if a holder panicked.
        let mut by_route = self.by_route.lock().unwrap_or_else(PoisonError::into_inner);
        let statuses = match by_route.get_mut(route) {
            Some(statuses) => statuses,
            None => by_route.entry(Arc::from(route)).or_default(),
        };
        match statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, count)) => *count += 1,
            None => statuses.push((status, 1)),
        }
    }

    /// Appends the family to `out`, sorted by route and status.
    pub(crate) fn render(&self, out: &mut String) {
        let mut samples: Vec<(Arc<str>, u16, u64)> = {
            let by_route = self.by_route.lock().unwrap_or_else(PoisonError::into_inner);
            by_route
                .iter()
                .flat_map(|(route, statuses)| statuses.iter().map(|&(s, n)| (route.clone(), s, n)))
                .collect()
        };
        samples.sort_unstable();
        let name = "peerix_http_requests_total";
        let _ = writeln!(
            out,
            "# HELP {name} HTTP requests answered, by route template and status.\n\
             # TYPE {name} counter"
        );
        for (route, status, count) in samples {
            let _ = writeln!(
                out,
                "{name}{{route=\"{}\",status=\"{status}\"}} {count}",
                escaped(&route)
            );
        }
    }
}

/// `text` as a Prometheus label value (templates are the program's own, but stay valid).
fn escaped(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Counts each request of the services it wraps; see the module docs.
#[derive(Clone)]
pub struct CountRequestsLayer {
    counts: Arc<RequestCounts>,
}

impl CountRequestsLayer {
    pub(crate) fn new(counts: Arc<RequestCounts>) -> Self {
        Self { counts }
    }
}

impl<S> Layer<S> for CountRequestsLayer {
    type Service = CountRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountRequests {
            inner,
            counts: self.counts.clone(),
        }
    }
}

/// A service whose responses are counted by route and status.
#[derive(Clone)]
pub struct CountRequests<S> {
    inner: S,
    counts: Arc<RequestCounts>,
}

impl<S> Service<Request> for CountRequests<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Counted<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // A cheap clone: the template is shared.
        let route = request.extensions().get::<MatchedPath>().cloned();
        Counted {
            inner: self.inner.call(request),
            route,
            counts: self.counts.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The wrapped service's response future, counted when it resolves.
    pub struct Counted<F> {
        #[pin]
        inner: F,
        route: Option<MatchedPath>,
        counts: Arc<RequestCounts>,
    }
}

impl<F, E> Future for Counted<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            let route = this.route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
            this.counts.record(route, response.status().as_u16());
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use axum::Router;

    fn app(counts: &Arc<RequestCounts>) -> Router {
        let nested = Router::new().route("/add", post(|| async { "added" }));
        Router::new()
            .route("/{file}", get(|| async { "narinfo" }))
            .route("/nar/{file}", get(|| async { StatusCode::NOT_FOUND }))
            .nest("/api/v0", nested)
            .layer(CountRequestsLayer::new(counts.clone()))
    }

    async fn send(app: &Router, method: &str, uri: &str) -> StatusCode {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        app.clone().call(request).await.unwrap().status()
    }

    fn rendered(counts: &RequestCounts) -> String {
        let mut out = String::new();
        counts.render(&mut out);
        out
    }

    #[tokio::test]
    async fn requests_count_by_route_template_and_status() {
        let counts = Arc::new(RequestCounts::default());
        let app = app(&counts);
        for hash in ["a.narinfo", "b.narinfo", "c.narinfo"] {
            assert_eq!(send(&app, "GET", &format!("/{hash}")).await, StatusCode::OK);
        }
        assert_eq!(send(&app, "GET", "/nar/x.nar").await, StatusCode::NOT_FOUND);
        assert_eq!(send(&app, "POST", "/api/v0/add").await, StatusCode::OK);
        // A method the route does not take is that route's answer.
        assert_eq!(
            send(&app, "GET", "/api/v0/add").await,
            StatusCode::METHOD_NOT_ALLOWED
        );
        // Outside every route: counted, but never under its own path.
        for uri in ["/no/such/route", "/another/one/entirely"] {
            assert_eq!(send(&app, "GET", uri).await, StatusCode::NOT_FOUND);
        }
        let text = rendered(&counts);
        let expected = [
            "peerix_http_requests_total{route=\"/api/v0/add\",status=\"200\"} 1",
            "peerix_http_requests_total{route=\"/api/v0/add\",status=\"405\"} 1",
            "peerix_http_requests_total{route=\"/nar/{file}\",status=\"404\"} 1",
            "peerix_http_requests_total{route=\"/{file}\",status=\"200\"} 3",
            "peerix_http_requests_total{route=\"unmatched\",status=\"404\"} 2",
        ];
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(samples, expected, "{text}");
        assert!(text.contains("# TYPE peerix_http_requests_total counter"));
        assert!(!text.contains("no/such"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let counts = RequestCounts::default();
        counts.record("/a\"b\\c", 200);
        let text = rendered(&counts);
        assert!(
            text.contains("route=\"/a\\\"b\\\\c\",status=\"200\"} 1"),
            "{text}"
        );
    }
}
