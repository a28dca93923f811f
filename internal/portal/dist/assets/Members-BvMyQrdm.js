import{j as e,d as r}from"./index-BtJ4-ujf.js";function t(){return e.jsx(r,{order:2,children:"Members"})}export{t as default};
