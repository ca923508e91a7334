import { mount } from 'svelte';
import App from './App.svelte';
import { createApp } from './lib/app-context.js';
import './app.css';

const target = document.getElementById('app');
if (!target) throw new Error('no #app element');
mount(App, { target, props: { app: createApp(window) } });
