//! Collecting errors so that all of them are reported at once.

use proc_macro2::TokenStream;

/// Errors found so far; combined into one `syn::Error` with several messages.
#[derive(Default)]
pub(crate) struct Errors {
    combined: Option<syn::Error>,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.combined {
            Some(combined) => combined.combine(error),
            None => self.combined = Some(error),
        }
    }

    pub(crate) fn error(&mut self, span: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(span, message));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.combined.is_none()
    }

    /// The original item followed by every error, so editors keep working on the item.
    pub(crate) fn emit(self, original: TokenStream) -> TokenStream {
        let errors = self.combined.map(|e| e.to_compile_error()).unwrap_or_default();
        quote::quote! { #original #errors }
    }
}
