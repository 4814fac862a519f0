// Copy-to-clipboard for the secrets a page shows once. Everything works
// without this script; it only unhides the Copy buttons.
document.addEventListener('DOMContentLoaded', () => {
	for (const button of document.querySelectorAll('button.copy[data-copy]')) {
		const source = document.getElementById(button.dataset.copy);
		if (!source || !navigator.clipboard) continue;
		button.hidden = false;
		button.addEventListener('click', async () => {
			const items = source.querySelectorAll('li');
			const text = items.length ? Array.from(items, li => li.textContent.trim()).join('\n') : source.textContent.trim();
			try {
				await navigator.clipboard.writeText(text);
				button.textContent = 'Copied';
			} catch {
				button.textContent = 'Copy failed: select and copy by hand';
			}
		});
	}
});
