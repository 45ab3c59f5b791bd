//! Which Knative service, configuration and revision this pod serves (Knative's runtime contract
//! hands them over as `K_SERVICE`, `K_CONFIGURATION` and `K_REVISION`): the binary reads them, the
//! server puts them on every `/metrics` series so that dashboards and autoscalers can tell
//! revisions apart without relabelling.

use std::borrow::Cow;

/// The pod's place in Knative; every part is optional (a plain Deployment has none of them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceIdentity {
    /// `K_SERVICE`: the Knative Service.
    pub service: Option<String>,
    /// `K_CONFIGURATION`: the Configuration the revision was stamped from.
    pub configuration: Option<String>,
    /// `K_REVISION`: the Revision this pod belongs to.
    pub revision: Option<String>,
}

impl ServiceIdentity {
    /// The constant labels: Knative's own metric label names, so that our series join theirs.
    /// Unset or empty parts give no label.
    pub(crate) fn metric_labels(&self) -> Vec<(Cow<'static, str>, Cow<'static, str>)> {
        [
            ("service_name", &self.service),
            ("configuration_name", &self.configuration),
            ("revision_name", &self.revision),
        ]
        .into_iter()
        .filter_map(|(name, value)| match value.as_deref() {
            Some(value) if !value.is_empty() => Some((Cow::Borrowed(name), Cow::Owned(value.to_owned()))),
            _ => None,
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_set_parts_become_labels() {
        let identity = ServiceIdentity {
            service: Some("hello".into()),
            configuration: Some(String::new()),
            revision: Some("hello-00001".into()),
        };
        let labels: Vec<(String, String)> =
            identity.metric_labels().into_iter().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        assert_eq!(
            labels,
            [("service_name", "hello"), ("revision_name", "hello-00001")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert!(ServiceIdentity::default().metric_labels().is_empty());
    }
}
